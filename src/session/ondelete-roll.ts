/**
 * A StatefulSet with the OnDelete update strategy picks up a new pod template only where its
 * pods are deleted: `up` (agent in) and `down` (agent out) roll them here. One pod at a time,
 * highest ordinal first as the controller's own rolling update does, each replacement Ready
 * before the next goes, so a quorum (etcd, ZooKeeper, a database cluster) never loses more than
 * one member. Only pods the StatefulSet controls (its uid in their controller ownerReference)
 * are touched: another workload's pods that match the selector are left alone.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { AGENT_CONTAINER, type KubeClient, labelSelectorString, type Workload } from '../kube/index.js';

export type PodRole = 'with-agent' | 'without-agent';

/** True when the pod runs the agent. */
export function hasAgent(pod: V1Pod): boolean {
  return pod.spec?.containers.some((c) => c.name === AGENT_CONTAINER) ?? false;
}

function ordinal(pod: V1Pod): number {
  const match = /-(\d+)$/.exec(pod.metadata?.name ?? '');
  return match ? Number(match[1]) : -1;
}

function ready(pod: V1Pod | undefined): boolean {
  return pod?.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

/** The workload's own pods that still need replacing, in the order they go. */
export function podsToReplace(
  pods: readonly V1Pod[],
  workload: Workload,
  replace: (pod: V1Pod) => boolean,
): V1Pod[] {
  const uid = workload.metadata?.uid;
  return pods
    .filter((p) => p.metadata?.ownerReferences?.some((r) => r.controller && r.uid === uid))
    .filter(replace)
    .sort((a, b) => ordinal(b) - ordinal(a));
}

/**
 * Deletes, one at a time, the workload's pods for which `replace` holds, waiting for each
 * replacement (a new pod of the same name for which it no longer holds) to be Ready.
 */
export async function rollOnDelete(
  client: KubeClient,
  workload: Workload,
  replace: (pod: V1Pod) => boolean,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<string[]> {
  const namespace = workload.metadata!.namespace!;
  const { items } = await client.list('Pod', namespace, {
    labelSelector: labelSelectorString(workload.spec?.selector),
  });
  const rolled: string[] = [];
  for (const pod of podsToReplace(items, workload, replace)) {
    options.signal?.throwIfAborted();
    const name = pod.metadata!.name!;
    const uid = pod.metadata!.uid;
    await client.delete('Pod', namespace, name, uid ? { uid } : {});
    await client.waitFor(
      'Pod',
      namespace,
      name,
      (p) => p !== undefined && p.metadata?.uid !== uid && !replace(p) && ready(p),
      { timeoutMs: options.timeoutMs, signal: options.signal, describe: `pod/${name} to come back ready` },
    );
    rolled.push(`pod/${name}`);
  }
  return rolled;
}
