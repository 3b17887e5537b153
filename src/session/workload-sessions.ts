/**
 * Every session of the workloads that have one on this Docker engine, whoever started them:
 * read from the workloads' session records (the cluster), with each session's request counters
 * summed over the agents' stats that the local sidecars read.
 */
import type { SessionSummary } from '../docker/index.js';
import type { RecordedRoute, SessionRecord } from '../kube/index.js';
import { describeRoute } from '../tunnel/route.js';
import { errorText } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { asDescribable } from './route-flags.js';

/** One session of a workload, as `status` shows it. */
export interface WorkloadSession {
  id: string;
  name: string;
  user: string;
  host: string;
  startedAt: string;
  mode: RecordedRoute['mode'];
  /** Its filter in words (a personal key masked). */
  filter: string;
  /** Summed over the pods whose agent answered; absent when none did or it is not connected. */
  requests?: SessionRequests;
}

export interface SessionRequests {
  /** Requests (or HTTP/2 streams) sent to the session. */
  routed: number;
  /** Copies sent to a mirror session, and those dropped (its queue full). */
  mirrored: number;
  dropped: number;
}

/** The record of each local session's workload, by `context/namespace/workload`; a string says why it is unknown. */
export type WorkloadRecords = Map<string, SessionRecord[] | string>;

export const workloadKey = (s: Pick<SessionSummary, 'context' | 'namespace' | 'workload'>) =>
  `${s.context ?? ''}/${s.namespace}/${s.workload}`;

/** Reads the session record of each workload that has a local session (one API connection per context and namespace). */
export async function readWorkloadRecords(
  local: readonly SessionSummary[],
  progress: Progress,
): Promise<WorkloadRecords> {
  const records: WorkloadRecords = new Map();
  if (local.length === 0) return records;
  const { connectCluster } = await import('../kube/connect.js');
  const { findWorkload, sessionsOf } = await import('../kube/index.js');
  const groups = new Map<string, SessionSummary[]>();
  for (const s of local) {
    const key = `${s.context ?? ''}/${s.namespace}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  await Promise.all(
    [...groups.values()].map(async (group) => {
      const first = group[0]!;
      try {
        const client = await connectCluster(
          { namespace: first.namespace, ...(first.context ? { context: first.context } : {}) },
          progress,
        );
        try {
          for (const s of group) {
            if (records.has(workloadKey(s))) continue;
            const workload = await findWorkload(client, s.workload, s.namespace).catch(() => undefined);
            records.set(workloadKey(s), workload ? sessionsOf(workload) : 'the workload is gone');
          }
        } finally {
          client.close();
        }
      } catch (err) {
        for (const s of group) records.set(workloadKey(s), `the cluster did not answer: ${errorText(err)}`);
      }
    }),
  );
  return records;
}

/** The workload's sessions with their counters from the agents' stats (`agents`: pod → stats, as the sidecar read them). */
export function workloadSessions(
  record: readonly SessionRecord[],
  agents: Record<string, unknown> | undefined,
): WorkloadSession[] {
  return record.map((s) => {
    const requests = sessionRequests(s.id, agents);
    return {
      id: s.id,
      name: s.name,
      user: s.user,
      host: s.host,
      startedAt: s.startedAt,
      mode: s.route.mode,
      filter: s.route.mode === 'global' ? 'every request' : describeRoute(asDescribable(s.route)),
      ...(requests ? { requests } : {}),
    };
  });
}

/** A session's counters summed over the agents that know it. */
export function sessionRequests(
  id: string,
  agents: Record<string, unknown> | undefined,
): SessionRequests | undefined {
  const counters = Object.values(agents ?? {})
    .map((a) => (a as { bySession?: Record<string, Partial<SessionRequests>> } | undefined)?.bySession?.[id])
    .filter((c): c is Partial<SessionRequests> => typeof c?.routed === 'number');
  if (counters.length === 0) return undefined;
  const sum = (key: keyof SessionRequests) => counters.reduce((n, c) => n + (c[key] ?? 0), 0);
  return { routed: sum('routed'), mirrored: sum('mirrored'), dropped: sum('dropped') };
}

/** Requests on filtered ports that matched no session and went to the pod's app, summed over the agents. */
export function requestsToApp(agents: Record<string, unknown> | undefined): number | undefined {
  const counts = Object.values(agents ?? {})
    .map((a) => (a as { totals?: { toApp?: unknown } } | undefined)?.totals?.toApp)
    .filter((n): n is number => typeof n === 'number');
  return counts.length ? counts.reduce((n, c) => n + c, 0) : undefined;
}
