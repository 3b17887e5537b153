/**
 * Ending sessions, shared by `down` and `clean`: the local containers, and in
 * the cluster the workload, its Services and the agent's objects.
 */
import { connectDocker } from '../docker/connect.js';
import { findSessions, removeSession, type SessionFilter, type SessionSummary } from '../docker/index.js';
import {
  getWorkload,
  type KubeClient,
  type RestoreReport,
  restoreSession,
  type WorkloadKind,
} from '../kube/index.js';
import { errorText } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { deleteAgentObjects } from './agent-objects.js';
import { hasAgent, rollOnDelete } from './ondelete-roll.js';

/**
 * Removes the matching local sessions (those `only` accepts), except those whose id is in
 * `keep`; a Docker engine that does not answer becomes a warning.
 */
export async function removeLocalSessions(
  filter: SessionFilter,
  progress: Progress,
  keep: ReadonlySet<string> = new Set(),
  only: (session: SessionSummary) => boolean = () => true,
): Promise<{ containers: string[]; warning?: string }> {
  const containers: string[] = [];
  try {
    const docker = await connectDocker(progress);
    for (const session of await findSessions(docker, filter)) {
      if (keep.has(session.id) || !only(session)) continue;
      const removed = await progress.step(`Removing local session ${session.id} (${session.workload})`, () =>
        removeSession(docker, session.id),
      );
      containers.push(...removed.containers);
    }
    return { containers };
  } catch (err) {
    return {
      containers,
      warning: `local containers not removed: ${errorText(err)}; run \`devbox clean\` once Docker answers`,
    };
  }
}

/**
 * Restores the workload and its Services from their records, replaces the agent pods of a
 * StatefulSet that uses OnDelete (they would otherwise keep the agent, whose token goes next),
 * then deletes the agent's bundle and token.
 */
export async function restoreInCluster(
  client: KubeClient,
  namespace: string,
  kind: WorkloadKind,
  name: string,
  progress: Progress,
): Promise<{ restored: RestoreReport[]; deleted: string[] }> {
  const restored = await progress.step(
    `Restoring ${kind.toLowerCase()}/${name} and its Services in ${namespace}`,
    () => restoreSession(client, namespace, kind, name),
  );
  const workload = kind === 'StatefulSet' ? await getWorkload(client, kind, namespace, name) : undefined;
  if (
    workload?.spec &&
    'updateStrategy' in workload.spec &&
    workload.spec.updateStrategy?.type === 'OnDelete'
  ) {
    await progress.step(`Replacing the agent pods of statefulset/${name} one at a time`, () =>
      rollOnDelete(client, workload, hasAgent, { timeoutMs: 300_000 }),
    );
  }
  const deleted = await progress.step('Removing the agent bundle and token', () =>
    deleteAgentObjects(client, namespace, kind, name),
  );
  return { restored, deleted };
}
