/** `devbox status`: sessions on this Docker engine and how their tunnels fare. */
import { findSessions, readSidecarStatus, type SidecarStatus, sidecarReadiness } from '../docker/index.js';
import { errorText } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { connectToDocker } from './connect.js';

export interface SessionStatus {
  session: string;
  workload: string;
  namespace: string;
  context: string | undefined;
  state: 'running' | 'degraded' | 'stopped';
  created: string;
  containers: { sidecar?: string; service?: string };
  ready: boolean;
  reason: string;
  tunnels: { pod: string; state: string }[];
  addressMode?: string;
  inbound?: SidecarStatus['inbound'];
  outbound?: SidecarStatus['outbound'];
  dns?: SidecarStatus['dns'];
  /** Other namespaces a local name resolved into, and whether their Services are listened on. */
  otherNamespaces?: SidecarStatus['otherNamespaces'];
  lastErrors: SidecarStatus['lastErrors'];
}

export async function status(options: { progress: Progress }): Promise<SessionStatus[]> {
  const docker = await connectToDocker(options.progress);
  const sessions = await findSessions(docker);
  return Promise.all(
    sessions.map(async (s): Promise<SessionStatus> => {
      const base = {
        session: s.id,
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
          tunnels: live.tunnels.map((t) => ({ pod: t.pod, state: t.state })),
          addressMode: live.addressMode,
          inbound: live.inbound,
          outbound: live.outbound,
          dns: live.dns,
          otherNamespaces: live.otherNamespaces ?? {},
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
}
