/**
 * The production TunnelDialer: a pod port-forward to the agent's tunnel port,
 * an HTTP/2 tunnel session on top, and a pool of accept streams for inbound
 * connections. Also adapts the tunnel module's client to the sidecar's
 * TunnelLink surface.
 */
import type { TokenConnection } from '../kube/api/index.js';
import { openPortForward, type PortForwardTransport, TunnelClient, type UdpFlow } from '../tunnel/index.js';
import type { SessionRoute } from '../tunnel/route.js';
import type { TunnelDialer, TunnelLink, UdpFlowLink } from './tunnel-link.js';

export interface AgentDialerOptions {
  connection: TokenConnection;
  namespace: string;
  /** The agent's session token. */
  sessionToken: string;
  /** Accept streams kept pending at each agent. */
  acceptPoolSize?: number;
  /** UDP flow idle timeout asked of the agent. */
  udpIdleMs?: number;
  transport?: PortForwardTransport;
  /** Which inbound requests this session takes (absent: every one). */
  route?: SessionRoute;
  /** The session's id: the key of its counters in the agents' stats. */
  sessionId?: string;
}

export function createAgentDialer(opts: AgentDialerOptions): TunnelDialer {
  return async (target, onInbound, signal) => {
    const conn = opts.connection;
    const transport = await openPortForward({
      server: conn.server,
      token: conn.token(),
      ca: conn.ca,
      servername: conn.tlsServerName,
      namespace: opts.namespace,
      pod: target.pod,
      port: target.port,
      transport: opts.transport ?? 'auto',
      signal,
    });
    let client: TunnelClient;
    try {
      client = await TunnelClient.connect(transport, {
        token: opts.sessionToken,
        signal,
        ...(opts.route ? { route: opts.route } : {}),
        ...(opts.sessionId ? { sessionId: opts.sessionId } : {}),
      });
    } catch (err) {
      transport.destroy();
      throw err;
    }
    return linkFromClient(client, onInbound, opts);
  };
}

/** Wraps a connected TunnelClient (exported for tests that run a loopback agent). */
export function linkFromClient(
  client: TunnelClient,
  onInbound: Parameters<TunnelDialer>[1],
  opts: { acceptPoolSize?: number; udpIdleMs?: number } = {},
): TunnelLink {
  let streamsOpen = 0;
  const track = <T extends { once(event: 'close', l: () => void): unknown }>(stream: T): T => {
    streamsOpen++;
    stream.once('close', () => {
      streamsOpen--;
    });
    return stream;
  };
  const closed = new Promise<void>((resolve) => {
    if (client.closed) resolve();
    else client.once('close', () => resolve());
  });
  // The agent says whether it can serve a connection the local app refuses from the pod's app.
  const confirm = client.hello.features?.includes('accept-confirm') ?? false;
  const shares = client.hello.features?.includes('shares') ?? false;
  const accept = client.startAccepting(
    (stream, info) => {
      onInbound({
        stream: track(stream),
        confirm,
        appPort: info.appPort,
        interceptPort: info.interceptPort,
        clientAddress: info.clientAddress,
        clientPort: info.clientPort,
      });
    },
    opts.acceptPoolSize ?? 8,
    { confirm },
  );

  return {
    openTcp: async (host, port, signal) =>
      track(await client.openTcp(host, port, { signal, timeoutMs: 30_000 })),
    openUdp: async (host, port, signal) =>
      udpLink(await client.udpFlow(host, port, { signal, idleMs: opts.udpIdleMs ?? 60_000 })),
    dnsQuery: (query, signal) => client.dnsQuery(query, { signal, timeoutMs: 5_000 }),
    closed,
    close: () => {
      accept.stop();
      client.destroy();
    },
    stats: () => ({ streamsOpen }),
    agentStats: (timeoutMs) => client.stats(timeoutMs),
    share: (share) => {
      if (!shares) return false;
      client.share(share);
      return true;
    },
    revokeShare: (key) => {
      if (shares) client.revokeShare(key);
    },
  };
}

function udpLink(flow: UdpFlow): UdpFlowLink {
  return {
    send: (datagram) => {
      flow.send(datagram);
    },
    onDatagram: (listener) => {
      flow.on('message', listener);
    },
    onClose: (listener) => {
      flow.once('close', () => listener());
    },
    close: () => flow.close(),
  };
}
