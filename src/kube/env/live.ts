/**
 * resolveEnv against a live cluster: the lookup reads through KubeClient, and the
 * helpers pick the pod, the node's allocatable and the kubelet's version.
 */
import type { V1LabelSelector, V1Node, V1Pod, V1Service } from '@kubernetes/client-node';
import { DevboxError } from '../../util/errors.js';
import { KubeApiError } from '../api/errors.js';
import type { KubeClient } from '../client.js';
import { podTemplate, type Workload, workloadLabel } from '../workload.js';
import type { ResourceList } from './downward.js';
import { type EnvLookup, envFromKeyRuleFor, type ResolvedEnv, resolveEnv } from './resolve.js';
import { MASTER_SERVICE, masterServiceAt } from './service-env.js';

function isForbidden(err: unknown): boolean {
  return err instanceof KubeApiError && (err.status === 403 || err.status === 401);
}

/** Where env resolution learns what the user's credentials may not read. */
export interface EnvFallbacks {
  /** The master Service's address as a running pod's env names it (the agent knows it). */
  kubernetesService?: () => Promise<{ host: string; port: number } | undefined>;
}

/**
 * An EnvLookup reading the cluster. When the master Service is forbidden (a developer's Role
 * reaches no further than its namespace) it is taken from `fallbacks`, else it reads as absent.
 */
export function clusterEnvLookup(client: KubeClient, fallbacks: EnvFallbacks = {}): EnvLookup {
  return {
    getConfigMap: (namespace, name) => client.get('ConfigMap', namespace, name),
    getSecret: (namespace, name) => client.get('Secret', namespace, name),
    listServices: async (namespace) => (await client.list('Service', namespace)).items,
    async getMasterService(): Promise<V1Service | undefined> {
      try {
        return await client.get('Service', MASTER_SERVICE.namespace, MASTER_SERVICE.name);
      } catch (err) {
        if (!isForbidden(err)) throw err;
        const seen = await fallbacks.kubernetesService?.();
        return seen && masterServiceAt(seen);
      }
    },
  };
}

/** The node a pod runs on, or undefined when it cannot be read (Nodes are cluster-scoped). */
async function readNode(client: KubeClient, name: string | undefined): Promise<V1Node | undefined> {
  if (!name) return undefined;
  try {
    return await client.get('Node', '', name);
  } catch (err) {
    if (isForbidden(err)) return undefined;
    throw err;
  }
}

/** Resolves `container`'s env in a running pod, as its kubelet did. */
export async function resolvePodEnv(
  client: KubeClient,
  namespace: string,
  podName: string,
  container: string,
): Promise<ResolvedEnv> {
  const pod = await client.get('Pod', namespace, podName);
  if (!pod) throw new DevboxError('NOT_FOUND', `pod "${podName}" not found in namespace "${namespace}"`);
  return resolveEnvForPod(client, pod, container);
}

async function resolveEnvForPod(
  client: KubeClient,
  pod: V1Pod,
  container: string,
  fallbacks: EnvFallbacks = {},
): Promise<ResolvedEnv> {
  const node = await readNode(client, pod.spec?.nodeName);
  const kubeletVersion = node?.status?.nodeInfo?.kubeletVersion;
  return resolveEnv(
    {
      pod,
      container,
      nodeAllocatable: node?.status?.allocatable as ResourceList | undefined,
      envFromKeys: kubeletVersion ? envFromKeyRuleFor(kubeletVersion) : 'relaxed',
    },
    clusterEnvLookup(client, fallbacks),
  );
}

/** `matchLabels` and `matchExpressions` as a label selector query string. */
export function labelSelectorString(selector: V1LabelSelector | undefined): string {
  const parts = Object.entries(selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of selector?.matchExpressions ?? []) {
    const values = (e.values ?? []).join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

/** The workload's running pods, newest first (not terminating). */
export async function runningPods(client: KubeClient, workload: Workload): Promise<V1Pod[]> {
  const namespace = workload.metadata?.namespace ?? client.namespace;
  const { items } = await client.list('Pod', namespace, {
    labelSelector: labelSelectorString(workload.spec?.selector),
  });
  const time = (p: V1Pod) => String(p.metadata?.creationTimestamp ?? '');
  return items
    .filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp)
    .sort((a, b) => time(b).localeCompare(time(a)));
}

/**
 * Resolves `container`'s env for a workload: in its newest running pod when there is
 * one, else from its pod template (fieldRefs that need a pod then fail with BAD_INPUT).
 */
export async function resolveWorkloadEnv(
  client: KubeClient,
  workload: Workload,
  container: string,
  fallbacks: EnvFallbacks = {},
): Promise<ResolvedEnv> {
  const [pod] = await runningPods(client, workload);
  if (pod) return resolveEnvForPod(client, pod, container, fallbacks);
  const namespace = workload.metadata?.namespace ?? client.namespace;
  const result = await resolveEnv(
    { pod: podTemplate(workload), container, namespace },
    clusterEnvLookup(client, fallbacks),
  );
  result.warnings.push(
    `${workloadLabel(workload.kind, workload.metadata?.name ?? '')} has no running pod: env read from its pod template`,
  );
  return result;
}
