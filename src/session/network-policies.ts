/** `up`'s check of the namespace's NetworkPolicies against the ports it is about to move (kube/network-policy.ts). */
import {
  blockingPolicies,
  describeBlocking,
  type InterceptPlan,
  type KubeClient,
  type NetworkPolicyLike,
  podTemplate,
  type Workload,
} from '../kube/index.js';
import { DevboxError } from '../util/errors.js';

/** Refuses (BAD_INPUT, changing nothing) when a policy would drop the traffic `intercept` moves to the agent. */
export async function checkNetworkPolicies(
  client: KubeClient,
  workload: Workload,
  appContainer: string,
  intercept: InterceptPlan,
): Promise<void> {
  if (intercept.ports.length === 0) return;
  const namespace = workload.metadata!.namespace!;
  const { items } = (await client.request(
    'GET',
    `/apis/networking.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/networkpolicies`,
  )) as { items?: NetworkPolicyLike[] };
  const template = podTemplate(workload);
  const app = template.spec?.containers.find((c) => c.name === appContainer);
  const names = new Map<number, string>();
  for (const p of app?.ports ?? []) if (p.name) names.set(p.containerPort, p.name);
  const blocking = blockingPolicies(items ?? [], template.metadata?.labels ?? {}, intercept.ports, names);
  if (blocking.length === 0) return;
  throw new DevboxError(
    'BAD_INPUT',
    `a NetworkPolicy would drop the traffic moved to the agent: ${describeBlocking(blocking, namespace)}`,
    {
      hint: 'devbox does not change NetworkPolicies; whoever owns the policy can admit the agent port (or the port by name), then run devbox up again',
    },
  );
}
