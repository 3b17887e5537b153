/**
 * The sidecar's resolver on 127.0.0.1:53 (UDP and TCP). Every query goes, as
 * raw bytes, to the agent, which resolves it with the pod's own resolv.conf;
 * the answer comes back unchanged except, in fallback mode, for rewritten A
 * records. Whatever happens, the client gets an answer quickly: SERVFAIL when
 * no tunnel is up, the relay fails or it takes longer than the timeout.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { emptyReply, maxUdpReply, rcodeOf, readHeader, servfail, withId } from './dns-wire.js';

/** Sends a raw query to the cluster and returns the raw reply; throws when it cannot. */
export type DnsRelay = (query: Buffer, signal: AbortSignal) => Promise<Buffer>;

export interface DnsServerOptions {
  address: string;
  /** 53 in production; 0 in tests. */
  port: number;
  relay: DnsRelay;
  /** Applied to every relayed reply (fallback mode rewrites A records). */
  rewrite?: (reply: Buffer) => Buffer;
  /** Per-query limit before answering SERVFAIL; resolvers retry after ~5 s, so stay below. */
  timeoutMs?: number;
  log?: Logger;
}

export interface DnsStats {
  queries: number;
  udpQueries: number;
  tcpQueries: number;
  /** Queries answered with SERVFAIL by the sidecar itself (no tunnel, relay failure, timeout). */
  errors: number;
  timeouts: number;
  truncated: number;
  lastError?: string;
  lastErrorAt?: string;
}

export interface DnsServer {
  readonly stats: DnsStats;
  /** Bound UDP and TCP ports (equal unless port 0 picked two different ones). */
  readonly udpPort: number;
  readonly tcpPort: number;
  close(): Promise<void>;
}

const TCP_IDLE_MS = 30_000;

function timeoutError(ms: number): Error {
  const err = new Error(`no answer from the cluster within ${ms} ms`);
  err.name = 'TimeoutError';
  return err;
}

export async function startDnsServer(opts: DnsServerOptions): Promise<DnsServer> {
  const stats: DnsStats = { queries: 0, udpQueries: 0, tcpQueries: 0, errors: 0, timeouts: 0, truncated: 0 };
  const timeoutMs = opts.timeoutMs ?? 4000;
  const inFlight = new Set<AbortController>();
  let closed = false;

  const resolve = async (query: Buffer): Promise<Buffer | undefined> => {
    stats.queries++;
    let id: number;
    try {
      id = readHeader(query).id;
    } catch {
      stats.errors++;
      return undefined;
    }
    // One controller per query rather than AbortSignal.any on a long-lived signal (it leaks on Node 20).
    const controller = new AbortController();
    inFlight.add(controller);
    const timer = setTimeout(() => controller.abort(timeoutError(timeoutMs)), timeoutMs);
    try {
      const reply = await Promise.race([
        opts.relay(query, controller.signal),
        new Promise<never>((_, reject) =>
          controller.signal.addEventListener('abort', () => reject(controller.signal.reason), { once: true }),
        ),
      ]);
      if (reply.length < 12) throw new Error(`short reply (${reply.length} bytes)`);
      const fixed = withId(reply, id);
      return opts.rewrite ? opts.rewrite(fixed) : fixed;
    } catch (err) {
      stats.errors++;
      if (err instanceof Error && err.name === 'TimeoutError') stats.timeouts++;
      stats.lastError = errorText(err);
      stats.lastErrorAt = new Date().toISOString();
      opts.log?.debug('dns relay failed', { error: stats.lastError });
      return servfail(query);
    } finally {
      clearTimeout(timer);
      inFlight.delete(controller);
    }
  };

  const udp = dgram.createSocket({ type: net.isIPv6(opts.address) ? 'udp6' : 'udp4' });
  udp.on('message', (query, rinfo) => {
    stats.udpQueries++;
    void resolve(query).then((reply) => {
      if (!reply || closed) return;
      let out = reply;
      if (reply.length > maxUdpReply(query)) {
        // Too big for this client over UDP: the TC bit makes it retry over TCP.
        stats.truncated++;
        out = emptyReply(query, rcodeOf(reply), true) ?? reply;
      }
      udp.send(out, rinfo.port, rinfo.address);
    });
  });
  udp.on('error', (err) => opts.log?.warn('dns udp socket error', { error: errorText(err) }));

  const tcpSockets = new Set<net.Socket>();
  const tcp = net.createServer((socket) => {
    tcpSockets.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('close', () => tcpSockets.delete(socket));
    socket.on('error', () => {});
    let buffered: Buffer = Buffer.alloc(0);
    let pending = 0;
    let ended = false;
    const maybeEnd = () => {
      if (ended && pending === 0 && !socket.destroyed) socket.end();
    };
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) break;
        const query = Buffer.from(buffered.subarray(2, 2 + len));
        buffered = buffered.subarray(2 + len);
        stats.tcpQueries++;
        pending++;
        // Replies may leave out of order (RFC 7766); each carries its query's id.
        void resolve(query).then((reply) => {
          pending--;
          if (reply && !socket.destroyed) {
            const frame = Buffer.alloc(2 + reply.length);
            frame.writeUInt16BE(reply.length, 0);
            reply.copy(frame, 2);
            socket.write(frame);
          } else if (!reply) {
            socket.destroy();
          }
          maybeEnd();
        });
      }
    });
    socket.on('end', () => {
      ended = true;
      maybeEnd();
    });
  });

  await new Promise<void>((res, rej) => {
    udp.once('error', rej);
    udp.bind(opts.port, opts.address, () => {
      udp.off('error', rej);
      res();
    });
  });
  const udpPort = udp.address().port;
  const listenTcp = (port: number) =>
    new Promise<void>((res, rej) => {
      tcp.once('error', rej);
      tcp.listen(port, opts.address, () => {
        tcp.off('error', rej);
        res();
      });
    });
  try {
    // With port 0, prefer the UDP port number so clients can use one port for both.
    await listenTcp(opts.port === 0 ? udpPort : opts.port).catch((err) => {
      if (opts.port === 0) return listenTcp(0);
      throw err;
    });
  } catch (err) {
    udp.close();
    throw err;
  }
  const tcpPort = (tcp.address() as net.AddressInfo).port;
  opts.log?.info('dns server listening', { address: opts.address, udpPort, tcpPort });

  return {
    stats,
    udpPort,
    tcpPort,
    async close() {
      closed = true;
      for (const c of inFlight) c.abort(new Error('dns server closing'));
      for (const s of tcpSockets) s.destroy();
      await Promise.all([
        new Promise<void>((res) => tcp.close(() => res())),
        new Promise<void>((res) => udp.close(() => res())),
      ]);
    },
  };
}
