/**
 * Waiting for the workload's pods to carry (or shed) the agent, and saying why
 * when they do not: the pods' waiting reasons and the agent's last log lines
 * turn "agent never ready" into something a user can act on.
 */
import type { V1Pod } from '@kubernetes/client-node';
import { AGENT_CONTAINER, type KubeClient, labelSelectorString, type Workload } from '../kube/index.js';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';

/** True once every replica runs the workload's current template and is ready. */
export function rolloutComplete(w: Workload | undefined): boolean {
  if (!w) return false;
  const spec = w.spec?.replicas ?? 1;
  const status = w.status;
  if (!status || (status.observedGeneration ?? 0) < (w.metadata?.generation ?? 0)) return false;
  if (w.kind === 'StatefulSet') {
    const sts = status as NonNullable<typeof status> & { currentRevision?: string; updateRevision?: string };
    // With OnDelete the controller never moves currentRevision to updateRevision.
    const onDelete = 'updateStrategy' in (w.spec ?? {}) && w.spec?.updateStrategy?.type === 'OnDelete';
    return (
      (sts.updatedReplicas ?? 0) === spec &&
      (sts.readyReplicas ?? 0) === spec &&
      (spec === 0 || onDelete || sts.currentRevision === sts.updateRevision)
    );
  }
  const d = status as NonNullable<typeof status> & {
    availableReplicas?: number;
    unavailableReplicas?: number;
  };
  return (
    (d.updatedReplicas ?? 0) === spec &&
    (d.replicas ?? 0) === spec &&
    (d.availableReplicas ?? 0) === spec &&
    !(d.unavailableReplicas ?? 0)
  );
}

export async function waitForRollout(
  client: KubeClient,
  workload: Workload,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<void> {
  const namespace = workload.metadata!.namespace!;
  const name = workload.metadata!.name!;
  const label = `${workload.kind.toLowerCase()}/${name}`;
  try {
    await client.waitFor(
      workload.kind,
      namespace,
      name,
      (w) => rolloutComplete(w ? ({ ...w, kind: workload.kind } as Workload) : undefined),
      { timeoutMs: options.timeoutMs, signal: options.signal, describe: `${label} to roll out` },
    );
  } catch (err) {
    if (!isDevboxError(err, 'TIMEOUT')) throw err;
    const why = await explainPods(client, workload).catch((e) => `could not read its pods: ${errorText(e)}`);
    throw new DevboxError('TIMEOUT', `${label} did not finish rolling out in ${options.timeoutMs / 1000}s`, {
      hint: `${why}\nThe workload stays modified until \`devbox down ${name} -n ${namespace}\` restores it.`,
      cause: err,
    });
  }
}

/** One line per pod that is not ready, with the reason its containers give. */
export async function explainPods(client: KubeClient, workload: Workload): Promise<string> {
  const namespace = workload.metadata!.namespace!;
  const pods = (
    await client.list('Pod', namespace, { labelSelector: labelSelectorString(workload.spec?.selector) })
  ).items;
  const lines: string[] = [];
  for (const pod of pods) {
    const waiting = notReadyReasons(pod);
    if (waiting.length === 0) continue;
    lines.push(`pod ${pod.metadata?.name}: ${waiting.join('; ')}`);
    const agent = pod.status?.containerStatuses?.find((c) => c.name === AGENT_CONTAINER);
    if (agent && (agent.restartCount ?? 0) > 0) {
      const log = await client
        .request('GET', `/api/v1/namespaces/${namespace}/pods/${pod.metadata?.name}/log`, {
          query: { container: AGENT_CONTAINER, tailLines: 5, previous: true },
        })
        .catch(() => undefined);
      if (typeof log === 'string' && log.trim())
        lines.push(`  agent log: ${log.trim().split('\n').join('\n  ')}`);
    }
  }
  return lines.length ? lines.join('\n') : 'Every pod reports ready; the controller has not caught up yet.';
}

function notReadyReasons(pod: V1Pod): string[] {
  if (pod.status?.phase === 'Pending' && !pod.status.containerStatuses?.length) {
    const cond = pod.status.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False');
    return [cond?.message ?? 'pending'];
  }
  return (pod.status?.containerStatuses ?? [])
    .filter((c) => !c.ready)
    .map((c) => {
      const waiting = c.state?.waiting;
      const terminated = c.state?.terminated ?? c.lastState?.terminated;
      if (waiting)
        return `${c.name} ${waiting.reason ?? 'waiting'}${waiting.message ? `: ${waiting.message}` : ''}`;
      if (terminated) return `${c.name} exited ${terminated.exitCode} (${terminated.reason ?? ''})`;
      return `${c.name} not ready`;
    });
}
