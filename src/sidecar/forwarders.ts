/**
 * Listeners on one local address and port that carry traffic through a tunnel
 * to the same real address and port inside the cluster: TCP connections become
 * tunnel streams, UDP peers become tunnel flows.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { joinStreams } from '../tunnel/pipe.js';
import { errorText } from '../util/errors.js';
import { listen } from '../util/listen.js';
import type { Logger } from '../util/log.js';
import type { UdpFlowLink } from './tunnel-link.js';

/** The outbound half of the tunnel manager. */
export interface Outbound {
  openTcp(host: string, port: number, signal?: AbortSignal): Promise<Duplex>;
  openUdp(host: string, port: number, signal?: AbortSignal): Promise<UdpFlowLink>;
  /** Told once a local connection is joined to what `openTcp(host, port)` gave. */
  joined?(host: string, port: number, local: net.Socket, remote: Duplex): void;
}

/** Traffic counters shared by all forwarders (and the inbound side). */
export interface TrafficStats {
  tcpConnections: number;
  tcpOpen: number;
  /** Local connections reset because the target could not be reached. */
  tcpRefused: number;
  udpFlows: number;
  udpFlowsOpen: number;
  /** Bytes from local clients into the tunnel, and back. */
  bytesOut: number;
  bytesIn: number;
}

export function newTrafficStats(): TrafficStats {
  return {
    tcpConnections: 0,
    tcpOpen: 0,
    tcpRefused: 0,
    udpFlows: 0,
    udpFlowsOpen: 0,
    bytesOut: 0,
    bytesIn: 0,
  };
}

/** Where a forwarder listens and where its traffic goes. */
export interface ForwardSpec {
  /** Address the local listener binds (the real IP, or its 127.x alias in fallback mode). */
  localIp: string;
  /** Address the agent dials. */
  remoteIp: string;
  /** Port listened on locally (and dialed, unless `remotePort` differs). */
  port: number;
  /** Port the agent dials when the local port differs (NAT: every destination behind one port). */
  remotePort?: number;
}

export interface Forwarder {
  close(): Promise<void>;
}

export interface ForwarderContext {
  outbound: Outbound;
  stats: TrafficStats;
  /** Records an error for the status endpoint. */
  onError: (what: string, err: unknown) => void;
  log?: Logger;
}

/**
 * Joins a local socket with a tunnel stream, counting bytes as they flow. A
 * failure to open the stream resets the local socket only.
 */
export async function forwardSocket(
  socket: net.Socket,
  open: (signal: AbortSignal) => Promise<Duplex>,
  ctx: Pick<ForwarderContext, 'stats' | 'onError'>,
  what: string,
  joined?: (local: net.Socket, remote: Duplex) => void,
): Promise<void> {
  const { stats } = ctx;
  stats.tcpConnections++;
  stats.tcpOpen++;
  const controller = new AbortController();
  const onEarlyClose = () => controller.abort();
  socket.once('close', onEarlyClose);
  socket.on('error', () => {});
  try {
    let remote: Duplex;
    try {
      remote = await open(controller.signal);
    } catch (err) {
      stats.tcpRefused++;
      ctx.onError(what, err);
      if (!socket.destroyed) socket.resetAndDestroy();
      return;
    }
    socket.off('close', onEarlyClose);
    if (socket.destroyed) {
      remote.destroy();
      return;
    }
    socket.on('data', (chunk: Buffer) => {
      stats.bytesOut += chunk.length;
    });
    remote.on('data', (chunk: Buffer) => {
      stats.bytesIn += chunk.length;
    });
    joined?.(socket, remote);
    await joinStreams(socket, remote);
  } finally {
    stats.tcpOpen--;
  }
}

export async function startTcpForwarder(spec: ForwardSpec, ctx: ForwarderContext): Promise<Forwarder> {
  const sockets = new Set<net.Socket>();
  const what = `tcp ${spec.remoteIp}:${spec.port}`;
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    void forwardSocket(
      socket,
      (signal) => ctx.outbound.openTcp(spec.remoteIp, spec.port, signal),
      ctx,
      what,
      (local, remote) => ctx.outbound.joined?.(spec.remoteIp, spec.port, local, remote),
    );
  });
  await listen(server, { host: spec.localIp, port: spec.port, exclusive: true });
  server.on('error', (err) => ctx.onError(what, err));
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

/** Where a redirected connection was going, from the local address it arrived at. */
export type RedirectLookup = (localAddress: string) => { ip: string; port: number } | undefined;

export interface RedirectListener extends Forwarder {
  readonly port: number;
}

/**
 * The one TCP listener behind NAT: bound to the wildcard address (a connection redirected to
 * 127.64.x.y arrives there with that address as its local address, which names its destination)
 * on `port`, by default one the kernel picks from the ephemeral range, which apps do not
 * declare. `avoid` lists ports it must not take (the app's own); a kernel pick among them is
 * given back and another taken.
 */
export async function startRedirectListener(
  lookup: RedirectLookup,
  ctx: ForwarderContext,
  options: { port?: number; avoid?: ReadonlySet<number> } = {},
): Promise<RedirectListener> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
    const target = socket.localAddress ? lookup(socket.localAddress) : undefined;
    if (!target) {
      ctx.stats.tcpRefused++;
      ctx.onError('redirect', new Error(`no cluster destination for local address ${socket.localAddress}`));
      socket.resetAndDestroy();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const what = `tcp ${target.ip}:${target.port}`;
    void forwardSocket(
      socket,
      (signal) => ctx.outbound.openTcp(target.ip, target.port, signal),
      ctx,
      what,
      (local, remote) => ctx.outbound.joined?.(target.ip, target.port, local, remote),
    );
  });
  const avoid = options.avoid ?? new Set<number>();
  for (let attempt = 0; ; attempt++) {
    await listen(server, { host: '0.0.0.0', port: options.port ?? 0, exclusive: true });
    const port = (server.address() as net.AddressInfo).port;
    if (!avoid.has(port) || options.port !== undefined || attempt > 20) break;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  server.on('error', (err) => ctx.onError('redirect listener', err));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

interface UdpPeer {
  flow?: UdpFlowLink;
  queue: Buffer[];
  lastActive: number;
  closed: boolean;
}

const UDP_QUEUE_MAX = 64;

export async function startUdpForwarder(
  spec: ForwardSpec,
  ctx: ForwarderContext,
  idleMs = 60_000,
): Promise<Forwarder> {
  const remotePort = spec.remotePort ?? spec.port;
  const what = `udp ${spec.remoteIp}:${remotePort}`;
  const socket = dgram.createSocket({ type: net.isIPv6(spec.localIp) ? 'udp6' : 'udp4' });
  const peers = new Map<string, UdpPeer>();
  const { stats } = ctx;

  const drop = (key: string, peer: UdpPeer) => {
    if (peer.closed) return;
    peer.closed = true;
    if (peers.get(key) === peer) peers.delete(key);
    if (peer.flow) stats.udpFlowsOpen--;
    peer.flow?.close();
  };

  socket.on('message', (datagram, rinfo) => {
    const key = `${rinfo.address}|${rinfo.port}`;
    let peer = peers.get(key);
    stats.bytesOut += datagram.length;
    if (peer) {
      peer.lastActive = Date.now();
      if (peer.flow) peer.flow.send(datagram);
      else if (peer.queue.length < UDP_QUEUE_MAX) peer.queue.push(datagram);
      return;
    }
    const fresh: UdpPeer = { queue: [datagram], lastActive: Date.now(), closed: false };
    peer = fresh;
    peers.set(key, fresh);
    ctx.outbound.openUdp(spec.remoteIp, remotePort).then(
      (flow) => {
        if (fresh.closed) return flow.close();
        fresh.flow = flow;
        stats.udpFlows++;
        stats.udpFlowsOpen++;
        flow.onDatagram((reply) => {
          fresh.lastActive = Date.now();
          stats.bytesIn += reply.length;
          socket.send(reply, rinfo.port, rinfo.address);
        });
        flow.onClose(() => drop(key, fresh));
        for (const d of fresh.queue) flow.send(d);
        fresh.queue = [];
      },
      (err) => {
        ctx.onError(what, err);
        drop(key, fresh);
      },
    );
  });
  socket.on('error', (err) => ctx.onError(what, err));

  const sweeper = setInterval(
    () => {
      const cutoff = Date.now() - idleMs;
      for (const [key, peer] of peers) if (peer.lastActive < cutoff) drop(key, peer);
    },
    Math.min(idleMs, 10_000),
  );
  sweeper.unref();

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: spec.localIp, port: spec.port, exclusive: true }, () => {
      socket.off('error', reject);
      resolve();
    });
  }).catch((err) => {
    clearInterval(sweeper);
    socket.close();
    throw err;
  });

  return {
    close: () =>
      new Promise<void>((resolve) => {
        clearInterval(sweeper);
        for (const [key, peer] of peers) drop(key, peer);
        socket.close(() => resolve());
      }),
  };
}

/** Text for logs of a failed listener or stream. */
export function describeError(err: unknown): string {
  const code = (err as { code?: string })?.code;
  return code ? `${code}: ${errorText(err)}` : errorText(err);
}
