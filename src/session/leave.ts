/**
 * A session leaving its workload, shared by `down`, `clean` and an `up` that fails. Sessions
 * come and go on one agent: one that leaves while others remain only takes its entry out of the
 * record; the last one restores the workload and its Services exactly and removes the agent's
 * objects. That last one first marks itself `ending` (written with the version it read), so an
 * `up` that would join meanwhile gets a conflict instead of an agent about to go.
 */
import {
  getWorkload,
  type KubeClient,
  type RestoreReport,
  type SessionRecord,
  sessionsOf,
  updateWithRetry,
  type WorkloadKind,
  withSessions,
  writeWorkload,
} from '../kube/index.js';
import type { Progress } from '../util/progress.js';
import { restoreInCluster } from './teardown.js';

export interface LeaveOptions {
  /** Leave the agent in the pods even when no session remains (a faster next `up`). */
  keepAgent: boolean;
  /** Act only while one of the sessions is still recorded (an `up` undoing its own claim). */
  onlyIfRecorded: boolean;
  progress: Progress;
}

export interface LeaveResult {
  /** The sessions that remain on the workload. */
  remaining: SessionRecord[];
  restored: RestoreReport[];
  deleted: string[];
}

/** Takes the sessions `ids` off the workload; restores it when none remains. */
export async function leaveWorkload(
  client: KubeClient,
  namespace: string,
  kind: WorkloadKind,
  name: string,
  ids: readonly string[],
  options: LeaveOptions,
): Promise<LeaveResult> {
  let remaining: SessionRecord[] = [];
  let restore = false;
  await updateWithRetry(
    () => getWorkload(client, kind, namespace, name),
    (w) => {
      const sessions = sessionsOf(w);
      const leaving = sessions.filter((s) => ids.includes(s.id));
      remaining = sessions.filter((s) => !ids.includes(s.id));
      restore = false;
      if (options.onlyIfRecorded && leaving.length === 0) return undefined;
      if (remaining.length || options.keepAgent)
        return leaving.length ? withSessions(w, remaining) : undefined;
      restore = true;
      const last = leaving.at(-1);
      return last && !last.ending ? withSessions(w, [{ ...last, ending: true }]) : undefined;
    },
    (w) => writeWorkload(client, w),
  );
  if (!restore) return { remaining, restored: [], deleted: [] };
  const done = await restoreInCluster(client, namespace, kind, name, options.progress);
  return { remaining: [], ...done };
}
