/**
 * NetworkPolicies that would cut a session off. `up` moves each Service's traffic from the app's
 * port to an agent port of the same pods: a policy that admits the app's port by *number* but not
 * the agent's would drop every intercepted connection once the pods roll — an outage no one is
 * told about. (A port admitted by *name* follows the name, which the agent takes over.) Such a
 * policy makes `up` refuse, naming it and the port to add, before anything changes; devbox
 * never edits policies itself: they are someone else's security decision.
 */
import type { InterceptedPort } from './intercept.js';

/** The fields of a NetworkPolicy read here (networking.k8s.io/v1). */
export interface NetworkPolicyLike {
  metadata?: { name?: string };
  spec?: {
    podSelector?: LabelSelectorLike;
    policyTypes?: string[];
    ingress?: { ports?: PolicyPortLike[] }[];
  };
}

interface LabelSelectorLike {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

interface PolicyPortLike {
  protocol?: string;
  port?: number | string;
  endPort?: number;
}

/** One policy that admits the app's port and not the agent's. */
export interface BlockingPolicy {
  policy: string;
  port: InterceptedPort;
}

/**
 * The policies of `policies` that select pods labelled `podLabels` and would drop `ports` once
 * moved; `appPortNames` names the app container's ports as they were before the move.
 */
export function blockingPolicies(
  policies: readonly NetworkPolicyLike[],
  podLabels: Record<string, string>,
  ports: readonly InterceptedPort[],
  appPortNames: ReadonlyMap<number, string>,
): BlockingPolicy[] {
  const out: BlockingPolicy[] = [];
  for (const policy of policies) {
    const spec = policy.spec ?? {};
    if (!selects(spec.podSelector, podLabels) || !restrictsIngress(spec)) continue;
    const rules = spec.ingress ?? [];
    const admits = (port: number, name: string | undefined, protocol: string) =>
      rules.some(
        (rule) => !rule.ports?.length || rule.ports.some((p) => portMatches(p, port, name, protocol)),
      );
    for (const port of ports) {
      const appAdmitted = admits(port.appPort, appPortNames.get(port.appPort), port.protocol);
      const agentAdmitted = admits(port.agentPort, port.agentPortName, port.protocol);
      if (appAdmitted && !agentAdmitted) out.push({ policy: policy.metadata?.name ?? '', port });
    }
  }
  return out;
}

/** What to tell the user: each policy, and the port to add to it. */
export function describeBlocking(blocking: readonly BlockingPolicy[], namespace: string): string {
  return blocking
    .map(
      ({ policy, port }) =>
        `networkpolicy/${policy} admits the app's port ${port.appPort} by number but not the agent's port ${port.agentPort} that service/${port.service}:${port.port} moves to; add {port: ${port.agentPort}, protocol: ${port.protocol}} to its ingress rule (kubectl -n ${namespace} edit networkpolicy ${policy}), or admit the port by its name`,
    )
    .join('; ');
}

/** The ingress of selected pods is limited when policyTypes lists Ingress, or omits policyTypes (the default). */
function restrictsIngress(spec: NonNullable<NetworkPolicyLike['spec']>): boolean {
  return spec.policyTypes === undefined || spec.policyTypes.includes('Ingress');
}

function portMatches(p: PolicyPortLike, port: number, name: string | undefined, protocol: string): boolean {
  if ((p.protocol ?? 'TCP') !== protocol) return false;
  if (p.port === undefined) return true;
  if (typeof p.port === 'string') return name !== undefined && p.port === name;
  return p.endPort !== undefined ? port >= p.port && port <= p.endPort : port === p.port;
}

/** Label selector semantics: an empty selector selects every pod. */
function selects(selector: LabelSelectorLike | undefined, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {}))
    if (labels[key] !== value) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const inValues = has && (e.values ?? []).includes(labels[e.key]!);
    const ok =
      e.operator === 'In'
        ? inValues
        : e.operator === 'NotIn'
          ? !inValues
          : e.operator === 'Exists'
            ? has
            : e.operator === 'DoesNotExist'
              ? !has
              : false;
    if (!ok) return false;
  }
  return true;
}
