/** `devbox status`: sessions on this Docker engine and how their tunnels fare. */

import { connectDocker } from '../docker/connect.js';
import { findSessions, readSidecarStatus, type SidecarStatus, sidecarReadiness } from '../docker/index.js';
import type { AgentStats } from '../tunnel/protocol.js';
import { errorText } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import {
  readWorkloadRecords,
  requestsToApp,
  type WorkloadSession,
  workloadKey,
  workloadSessions,
} from './workload-sessions.js';

export interface SessionStatus {
  session: string;
  /** Its name on the workload (`up --name`). */
  name?: string;
  workload: string;
  namespace: string;
  context: string | undefined;
  state: 'running' | 'degraded' | 'stopped';
  created: string;
  containers: { sidecar?: string; service?: string };
  ready: boolean;
  reason: string;
  /** `lastError` says why a tunnel is not up (e.g. a pod that could not prove the session token). */
  tunnels: { pod: string; state: string; lastError?: string }[];
  addressMode?: string;
  inbound?: SidecarStatus['inbound'];
  outbound?: SidecarStatus['outbound'];
  dns?: SidecarStatus['dns'];
  /** Where the agents sent the cluster's connections, summed over the workload's pods. */
  podsRouted?: PodsRouted;
  /** Other namespaces a local name resolved into, and whether their Services are listened on. */
  otherNamespaces?: SidecarStatus['otherNamespaces'];
  /**
   * Services of other local sessions this session's container reaches directly on the Docker
   * engine (with counts); every other Service is reached through the cluster.
   */
  localRoutes?: SidecarStatus['localRoutes'];
  lastErrors: SidecarStatus['lastErrors'];
  /** Every session of the workload, whoever started it (this one included), with its filter and requests. */
  sessions?: WorkloadSession[];
  /** Why the workload's sessions are not listed. */
  sessionsUnknown?: string;
  /** Requests on filtered ports that matched no session and went to the pod's app. */
  requestsToApp?: number;
}

export async function status(options: { progress: Progress }): Promise<SessionStatus[]> {
  const docker = await connectDocker(options.progress);
  const sessions = await findSessions(docker);
  // The cluster is asked while the sidecars are.
  const reading = readWorkloadRecords(sessions, options.progress);
  const statuses = await Promise.all(
    sessions.map(async (s): Promise<SessionStatus & { agents?: Record<string, unknown> }> => {
      const base = {
        session: s.id,
        ...(s.name ? { name: s.name } : {}),
        workload: s.workload,
        namespace: s.namespace,
        context: s.context,
        state: s.state,
        created: s.created.toISOString(),
        containers: { sidecar: s.sidecar?.name, service: s.service?.name },
      };
      if (!s.sidecar || s.sidecar.state !== 'running') {
        return { ...base, ready: false, reason: 'the sidecar is not running', tunnels: [], lastErrors: [] };
      }
      // A tunnel that is up does not help while the app it leads to has stopped.
      const stopped =
        s.service && s.service.state !== 'running'
          ? `the service container ${s.service.name} is not running (${s.service.status}); see \`docker logs ${s.service.name}\``
          : undefined;
      try {
        const live = await readSidecarStatus(docker, s.sidecar.id);
        const verdict = sidecarReadiness(live);
        return {
          ...base,
          ready: verdict.ready && !stopped,
          reason: stopped ?? verdict.reason,
          tunnels: live.tunnels.map((t) => ({
            pod: t.pod,
            state: t.state,
            ...(t.state !== 'up' && t.lastError ? { lastError: t.lastError } : {}),
          })),
          addressMode: live.addressMode,
          inbound: live.inbound,
          outbound: live.outbound,
          dns: live.dns,
          podsRouted: podsRouted(live.agents),
          ...withRequestsToApp(requestsToApp(live.agents)),
          agents: live.agents,
          otherNamespaces: live.otherNamespaces ?? {},
          localRoutes: live.localRoutes ?? [],
          lastErrors: live.lastErrors,
        };
      } catch (err) {
        return {
          ...base,
          ready: false,
          reason: `status unreadable: ${errorText(err)}`,
          tunnels: [],
          lastErrors: [],
        };
      }
    }),
  );
  const records = await reading;
  return statuses.map(({ agents, ...s }) => {
    const record = records.get(workloadKey(sessions.find((l) => l.id === s.session)!));
    if (record === undefined) return s;
    if (typeof record === 'string') return { ...s, sessionsUnknown: record };
    return { ...s, sessions: workloadSessions(record, agents) };
  });
}

const withRequestsToApp = (n: number | undefined) => (n === undefined ? {} : { requestsToApp: n });

export interface PodsRouted {
  /** Connections sent to this session. */
  toSession: number;
  /** Connections sent to the pod's own app (no session accepting yet, or none in time). */
  toPodApp: number;
  /** Of those, kept-alive ones closed at a quiet moment so that their clients reconnect to the session. */
  handedOver: number;
  /** Sent to the session, refused by the local app (down or restarting), and served by the pod's app. */
  localRefused: number;
}

/** One line of where the agents sent the cluster's connections, for the text of `status`. */
export function describePodsRouted(p: PodsRouted): string {
  const handedOver = p.handedOver
    ? ` (${p.handedOver} later closed so that their clients reconnect to you)`
    : '';
  const refused = p.localRefused
    ? `; ${p.localRefused} of yours refused by your app (not listening) and served by the pod's app instead`
    : '';
  return `at the pods: ${p.toSession} connections sent to you, ${p.toPodApp} to the pod's app${handedOver}${refused}`;
}

/** Sums the agents' counters; pods whose agent did not answer are left out. */
export function podsRouted(agents: Record<string, unknown> | undefined): PodsRouted | undefined {
  const answers = Object.values(agents ?? {})
    .map((a) => (a as Partial<AgentStats> | undefined)?.totals)
    .filter((t): t is AgentStats['totals'] => typeof t?.intercepted === 'number');
  if (answers.length === 0) return undefined;
  return {
    toSession: answers.reduce((n, t) => n + t.intercepted, 0),
    toPodApp: answers.reduce((n, t) => n + t.passedThrough, 0),
    handedOver: answers.reduce((n, t) => n + (t.handedOver ?? 0), 0),
    localRefused: answers.reduce((n, t) => n + (t.localRefused ?? 0), 0),
  };
}
