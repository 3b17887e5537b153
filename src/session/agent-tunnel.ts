/**
 * A tunnel from the CLI itself to one agent pod, with the user's own
 * credentials: `up` uses it to copy emptyDir / PVC contents before the local
 * container starts (the sidecar's tunnels carry the session's traffic).
 */
import { AGENT_CONTAINER, type KubeClient, runningPods, type Workload } from '../kube/index.js';
import { settings } from '../settings/index.js';
import { openPortForward, TunnelClient } from '../tunnel/index.js';

export async function openAgentTunnel(
  client: KubeClient,
  workload: Workload,
  tunnelPort: number,
  token: string,
  signal?: AbortSignal,
): Promise<TunnelClient | undefined> {
  const pods = await runningPods(client, workload);
  const pod = pods.find((p) =>
    p.status?.containerStatuses?.some((c) => c.name === AGENT_CONTAINER && c.ready),
  );
  if (!pod) return undefined;
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
  return TunnelClient.connect(duplex, { token, pingIntervalMs: 0 });
}
