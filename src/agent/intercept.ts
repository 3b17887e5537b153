import type { ServerHttp2Stream } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { abortStream, joinStreams } from '../tunnel/pipe.js';
import {
  ACCEPT_CONNECTED,
  ACCEPT_REFUSED,
  ACCEPT_REPLAY_MAX,
  type InboundInfo,
  type InterceptSpec,
  inboundInfoHeaders,
} from '../tunnel/protocol.js';
import { errorText } from '../util/errors.js';
import { listen } from '../util/listen.js';
import type { Logger } from '../util/log.js';
import type { HttpRouting } from './http/index.js';
import type { AgentCounters } from './stats.js';

/** Where inbound connections can go besides the in-pod app. */
export interface AcceptSource {
  /** True when some live session wants inbound traffic (even if its pool is momentarily empty). */
  hasAcceptingSession(): boolean;
  /** A pending accept stream, if any. */
  takeAcceptStream(): ServerHttp2Stream | undefined;
  /** True when some session takes filtered requests or copies: the ports then route HTTP per request. */
  hasRoutingSession(): boolean;
}

export interface InterceptorOptions {
  specs: InterceptSpec[];
  /** undefined = all interfaces. */
  host: string | undefined;
  queueMax: number;
  waitMs: number;
  log: Logger;
  counters: AgentCounters;
  source: AcceptSource;
  /** The HTTP path, taken while a filtered or mirror session accepts. */
  http?: HttpRouting;
}

interface InboundConnection {
  socket: net.Socket;
  spec: InterceptSpec;
  timer?: NodeJS.Timeout;
}

/** A connection passed through to the in-pod app, watched for a quiet moment to hand it over. */
interface PassedThrough {
  client: net.Socket;
  app: net.Socket;
  /** The app sent the last bytes: a request-response client has its answer. */
  appSpokeLast: boolean;
  /**
   * The client has sent something. Until then the app's bytes are a greeting (SMTP, MySQL), not an
   * answer, and the client may take its time to reply.
   */
  clientSpoke: boolean;
  lastBytesAt: number;
  /** Since when a session could have it. */
  waitingSince?: number;
  timer?: NodeJS.Timeout;
}

/**
 * How long a passed-through connection must be quiet, after the app spoke, before it is closed
 * so that its client reconnects to the session. Shorter than any common keep-alive timeout
 * (Node 5 s, Go 90 s, nginx 75 s) and long enough for a request that follows an answer at once.
 */
export const HAND_OVER_QUIET_MS = 250;
/**
 * A client that never pauses that long (several requests a second on one connection) is taken
 * at its first short pause once it has kept the session waiting this long.
 */
export const HAND_OVER_PATIENCE_MS = 2_000;
export const HAND_OVER_SHORT_QUIET_MS = 25;
/** A handed-over connection whose peers do not close after our FIN is destroyed after this. */
const HAND_OVER_CLOSE_MS = 5_000;

/** Accept streams whose sidecar answers for its local app first (`devbox-accept-confirm`). */
const confirming = new WeakSet<ServerHttp2Stream>();

/** Marks an accept stream as starting with the sidecar's ACCEPT_CONNECTED / ACCEPT_REFUSED byte. */
export function markConfirming(stream: ServerHttp2Stream): void {
  confirming.add(stream);
}

export function isConfirming(stream: ServerHttp2Stream): boolean {
  return confirming.has(stream);
}

/**
 * The intercept ports. Each connection goes to a sidecar session through a pending accept stream
 * when one is there; waits in a bounded queue while an accepting session is replenishing its pool;
 * otherwise (no session, session silent, queue full, wait expired) passes straight through to the
 * app on 127.0.0.1:<appPort>, so a lost laptop never black-holes the service.
 */
export class Interceptor {
  private readonly servers: net.Server[] = [];
  private readonly queue: InboundConnection[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly passed = new Set<PassedThrough>();
  private accepting = false;
  private bound: InterceptSpec[] = [];

  constructor(private readonly opts: InterceptorOptions) {}

  /** Listens on every intercept port; resolves with the specs as bound (port 0 → the real port). */
  async listen(): Promise<InterceptSpec[]> {
    this.bound = [];
    for (const spec of this.opts.specs) {
      const server = net.createServer({ allowHalfOpen: true, noDelay: true });
      await listen(server, { host: this.opts.host, port: spec.listenPort });
      const actual = { listenPort: (server.address() as AddressInfo).port, appPort: spec.appPort };
      server.on('connection', (socket) => this.onConnection(socket, actual));
      server.on('error', (err) =>
        this.opts.log.error('intercept listener failed', { error: errorText(err) }),
      );
      this.servers.push(server);
      this.bound.push(actual);
    }
    return this.bound;
  }

  get specs(): InterceptSpec[] {
    return this.bound;
  }

  /** Connections waiting for an accept stream. */
  get queued(): number {
    return this.queue.length;
  }

  /** Re-examines the queue and the passed-through connections: call when accept streams arrive or sessions change. */
  drain(): void {
    this.opts.http?.wake();
    this.noteAccepting();
    while (this.queue.length > 0) {
      if (!this.opts.source.hasAcceptingSession()) {
        for (const conn of this.queue.splice(0)) {
          clearTimeout(conn.timer);
          this.passThrough(conn);
        }
        return;
      }
      const conn = this.queue[0]!;
      if (conn.socket.destroyed) {
        this.queue.shift();
        clearTimeout(conn.timer);
        continue;
      }
      const stream = this.opts.source.takeAcceptStream();
      if (!stream) return;
      this.queue.shift();
      clearTimeout(conn.timer);
      this.toSession(conn, stream);
    }
  }

  /** Stops listening; queued connections pass through, established ones carry on. */
  close(): void {
    for (const server of this.servers.splice(0)) server.close();
    this.accepting = false;
    for (const conn of this.passed) clearTimeout(conn.timer);
    for (const conn of this.queue.splice(0)) {
      clearTimeout(conn.timer);
      this.passThrough(conn);
    }
  }

  /** Ends every connection still open (end of the shutdown grace). */
  destroyConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  private onConnection(socket: net.Socket, spec: InterceptSpec): void {
    socket.on('error', () => {});
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    this.route({ socket, spec });
  }

  private route(conn: InboundConnection): void {
    if (this.opts.http && this.opts.source.hasRoutingSession()) {
      this.opts.http.serve(conn.socket, conn.spec, (replay) => this.passThrough(conn, replay, false));
      return;
    }
    const stream = this.opts.source.takeAcceptStream();
    if (stream) {
      this.toSession(conn, stream);
      return;
    }
    if (this.opts.source.hasAcceptingSession()) {
      if (this.queue.length < this.opts.queueMax && this.opts.waitMs > 0) {
        this.enqueue(conn);
        return;
      }
      this.opts.counters.totals.queueOverflows++;
    }
    this.passThrough(conn);
  }

  private enqueue(conn: InboundConnection): void {
    this.queue.push(conn);
    const leave = () => {
      const i = this.queue.indexOf(conn);
      if (i >= 0) this.queue.splice(i, 1);
      clearTimeout(conn.timer);
    };
    conn.timer = setTimeout(() => {
      leave();
      this.opts.log.debug('no accept stream in time; passing through', { port: conn.spec.listenPort });
      this.passThrough(conn);
    }, this.opts.waitMs);
    conn.socket.once('close', leave);
  }

  private toSession(conn: InboundConnection, stream: ServerHttp2Stream): void {
    const { socket, spec } = conn;
    const info: InboundInfo = {
      clientAddress: normalizeAddress(socket.remoteAddress),
      clientPort: socket.remotePort ?? 0,
      interceptPort: spec.listenPort,
      appPort: spec.appPort,
    };
    try {
      stream.respond({ ':status': 200, ...inboundInfoHeaders(info) });
    } catch {
      // The stream died between take and respond: try the next route.
      this.route(conn);
      return;
    }
    this.opts.counters.totals.intercepted++;
    this.opts.counters.track('inbound', stream);
    if (confirming.has(stream)) this.untilConfirmed(conn, stream);
    else void joinStreams(socket, stream);
  }

  /**
   * The client's bytes (and FIN) go to the session at once, and a copy is kept until the sidecar's
   * first byte says whether its local app took the connection. Refused, the copy is replayed to the
   * app in the pod: the client never meets a local app that is down, starting or restarting.
   */
  private untilConfirmed(conn: InboundConnection, stream: ServerHttp2Stream): void {
    const { socket } = conn;
    const held: Buffer[] = [];
    let heldBytes = 0;
    let done = false;
    const detach = () => {
      done = true;
      socket.off('data', onClientData);
      socket.off('end', onClientEnd);
      socket.off('close', onClientClose);
      stream.off('data', onAnswer);
      stream.off('close', onStreamClose);
      stream.off('drain', onDrain);
      socket.pause();
    };
    const onClientData = (chunk: Buffer) => {
      heldBytes += chunk.length;
      if (heldBytes <= ACCEPT_REPLAY_MAX) held.push(chunk);
      if (!stream.write(chunk)) socket.pause();
    };
    const onDrain = () => socket.resume();
    const onClientEnd = () => stream.end();
    const onClientClose = () => {
      if (done) return;
      detach();
      abortStream(stream);
    };
    const onAnswer = (chunk: Buffer) => {
      if (done) return;
      detach();
      if (chunk[0] === ACCEPT_CONNECTED) {
        if (chunk.length > 1) socket.write(chunk.subarray(1));
        void joinStreams(socket, stream);
        return;
      }
      stream.close();
      if (chunk[0] === ACCEPT_REFUSED && heldBytes <= ACCEPT_REPLAY_MAX) {
        this.opts.counters.totals.localRefused++;
        this.opts.log.debug('the local app refused a connection; the app in the pod serves it', {
          port: conn.spec.appPort,
        });
        this.passThrough(conn, held);
        return;
      }
      abortStream(socket);
    };
    // Closed without an answer (the session went away): as without confirmation, a reset.
    const onStreamClose = () => {
      if (done) return;
      detach();
      void joinStreams(socket, stream);
    };
    stream.on('error', () => {});
    socket.on('data', onClientData);
    socket.once('end', onClientEnd);
    socket.once('close', onClientClose);
    stream.on('drain', onDrain);
    stream.on('data', onAnswer);
    stream.once('close', onStreamClose);
  }

  /** Joins the client with the app in the pod; `replay` is what the client already sent to a session. */
  private passThrough(conn: InboundConnection, replay: readonly Buffer[] = [], handOver = true): void {
    const { socket, spec } = conn;
    if (socket.destroyed) return;
    this.opts.counters.totals.passedThrough++;
    const upstream = net.connect({
      host: '127.0.0.1',
      port: spec.appPort,
      allowHalfOpen: true,
      noDelay: true,
    });
    let connected = false;
    const onEarlyClose = () => upstream.destroy();
    socket.once('close', onEarlyClose);
    upstream.once('error', (err) => {
      if (connected) return; // joinStreams handles it
      this.opts.log.debug('app refused a passed-through connection', {
        port: spec.appPort,
        error: errorText(err),
      });
      socket.off('close', onEarlyClose);
      abortStream(socket);
    });
    upstream.once('connect', () => {
      connected = true;
      socket.off('close', onEarlyClose);
      for (const chunk of replay) upstream.write(chunk);
      if (handOver) this.watchPassedThrough(socket, upstream, replay.length > 0);
      void joinStreams(socket, upstream);
    });
  }

  /**
   * Keep-alive clients (HTTP pools, database pools) would stay on a passed-through connection for as
   * long as they keep it busy, so a session would never see them. While a session accepts, such a
   * connection is closed at its first quiet moment after the app answered — what an HTTP server
   * does at its keep-alive timeout, which clients handle by reconnecting — and the new connection
   * goes to the session. Connections waiting on the app, quiet with the client having spoken last,
   * or greeted by the app before the client said anything, are left alone.
   */
  private watchPassedThrough(client: net.Socket, app: net.Socket, clientSpoke: boolean): void {
    const conn: PassedThrough = { client, app, appSpokeLast: false, clientSpoke, lastBytesAt: Date.now() };
    this.passed.add(conn);
    // Per chunk only two fields change; one timer per connection judges the quiet when it fires.
    client.on('data', () => {
      conn.appSpokeLast = false;
      conn.clientSpoke = true;
      conn.lastBytesAt = Date.now();
    });
    app.on('data', () => {
      conn.lastBytesAt = Date.now();
      if (!conn.clientSpoke) return;
      conn.appSpokeLast = true;
      if (this.accepting && !conn.timer) this.scheduleHandOver(conn);
    });
    client.once('close', () => {
      clearTimeout(conn.timer);
      this.passed.delete(conn);
    });
  }

  /** Starts or stops handing passed-through connections over when a session starts or stops accepting. */
  private noteAccepting(): void {
    const accepting = this.wantsConnections();
    if (accepting === this.accepting) return;
    this.accepting = accepting;
    for (const conn of this.passed) {
      if (!accepting) {
        clearTimeout(conn.timer);
        conn.timer = undefined;
        conn.waitingSince = undefined;
      } else if (conn.appSpokeLast) this.scheduleHandOver(conn);
    }
  }

  /** True when a session would take passed-through connections if their clients reconnected. */
  private wantsConnections(): boolean {
    return (
      this.opts.source.hasAcceptingSession() || (!!this.opts.http && this.opts.source.hasRoutingSession())
    );
  }

  /** Arms the connection's timer for the end of the quiet it still needs. */
  private scheduleHandOver(conn: PassedThrough): void {
    clearTimeout(conn.timer);
    conn.timer = setTimeout(() => this.handOver(conn), Math.max(0, this.quietLeft(conn)));
  }

  private quietLeft(conn: PassedThrough): number {
    const now = Date.now();
    conn.waitingSince ??= now;
    const quiet =
      now - conn.waitingSince >= HAND_OVER_PATIENCE_MS ? HAND_OVER_SHORT_QUIET_MS : HAND_OVER_QUIET_MS;
    return quiet - (now - conn.lastBytesAt);
  }

  private handOver(conn: PassedThrough): void {
    conn.timer = undefined;
    // The client spoke since: the next answer from the app arms the timer again.
    if (!conn.appSpokeLast || conn.client.destroyed) return;
    if (this.quietLeft(conn) > 0) {
      this.scheduleHandOver(conn);
      return;
    }
    if (!this.wantsConnections()) return;
    this.passed.delete(conn);
    this.opts.counters.totals.handedOver++;
    // FIN both ways; each side's own FIN in reply ends the join cleanly.
    conn.client.end();
    conn.app.end();
    const stuck = setTimeout(() => {
      conn.client.destroy();
      conn.app.destroy();
    }, HAND_OVER_CLOSE_MS);
    stuck.unref();
    conn.client.once('close', () => clearTimeout(stuck));
  }
}

/** `::ffff:10.0.0.1` → `10.0.0.1`. */
function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
