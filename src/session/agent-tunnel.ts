/**
 * A tunnel from the CLI itself to one agent pod, with the user's own
 * credentials: `up` uses it to copy emptyDir / PVC contents before the local
 * container starts (the sidecar's tunnels carry the session's traffic).
 */
import type { V1Pod } from '@kubernetes/client-node';
import { AGENT_CONTAINER, type KubeClient, runningPods, type Workload } from '../kube/index.js';
import { settings } from '../settings/index.js';
import { openPortForward, type SessionRoute, TunnelClient } from '../tunnel/index.js';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';

/** Which session the tunnel belongs to: the agent admits it beside that session's sidecar. */
export interface TunnelSession {
  id: string;
  route: SessionRoute;
}

/**
 * A tunnel to the newest running pod of `workload` that runs a ready agent container and proves it
 * holds `token`; undefined when no pod runs the agent. A pod that fails the proof (one with the
 * workload's labels that is not its agent) is passed over and learns nothing.
 */
export async function openAgentTunnel(
  client: KubeClient,
  workload: Workload,
  tunnelPort: number,
  token: string,
  session: TunnelSession,
  signal?: AbortSignal,
): Promise<TunnelClient | undefined> {
  const pods = (await runningPods(client, workload)).filter(runsReadyAgent);
  const refusals: string[] = [];
  for (const pod of pods) {
    try {
      return await connect(client, pod, tunnelPort, token, session, signal);
    } catch (err) {
      if (!isDevboxError(err, 'FORBIDDEN')) throw err;
      refusals.push(`pod/${pod.metadata!.name}: ${errorText(err)}`);
    }
  }
  if (refusals.length === 0) return undefined;
  throw new DevboxError(
    'FORBIDDEN',
    `no agent pod proved it holds the session token (${refusals.join('; ')})`,
  );
}

function runsReadyAgent(pod: V1Pod): boolean {
  return (
    (pod.spec?.containers ?? []).some((c) => c.name === AGENT_CONTAINER) &&
    (pod.status?.containerStatuses ?? []).some((c) => c.name === AGENT_CONTAINER && c.ready)
  );
}

async function connect(
  client: KubeClient,
  pod: V1Pod,
  tunnelPort: number,
  token: string,
  session: TunnelSession,
  signal: AbortSignal | undefined,
): Promise<TunnelClient> {
  const tls = await client.httpsOptions();
  const authorization = (tls.headers as Record<string, string> | undefined)?.Authorization;
  const duplex = await openPortForward({
    server: client.cluster.server,
    ...(authorization?.startsWith('Bearer ') ? { token: authorization.slice(7) } : {}),
    ...(tls.ca ? { ca: tls.ca as string | Buffer } : {}),
    ...(tls.cert ? { cert: tls.cert as string | Buffer } : {}),
    ...(tls.key ? { key: tls.key as string | Buffer } : {}),
    ...(client.cluster.tlsServerName ? { servername: client.cluster.tlsServerName } : {}),
    insecureSkipTlsVerify: client.cluster.insecureSkipTlsVerify,
    namespace: pod.metadata!.namespace!,
    pod: pod.metadata!.name!,
    port: tunnelPort,
    transport: settings().portForward,
    ...(signal ? { signal } : {}),
  });
  // Under the session's own id and route: the agent admits one global session at most, and the
  // sidecar of this session connects while this tunnel may still be open.
  return TunnelClient.connect(duplex, {
    token,
    pingIntervalMs: 0,
    sessionId: session.id,
    route: session.route,
  });
}
