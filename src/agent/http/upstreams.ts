import http from 'node:http';
import http2, { type ClientHttp2Session, type ServerHttp2Stream } from 'node:http2';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import {
  ACCEPT_CONNECTED,
  H2_MAX_SESSION_MEMORY_MB,
  H2_SETTINGS,
  type InboundInfo,
  type InterceptSpec,
  inboundInfoHeaders,
} from '../../tunnel/protocol.js';
import { isConfirming } from '../intercept.js';
import type { AgentCounters } from '../stats.js';
import type { AgentSession } from '../tunnel-server.js';
import type { SessionDirectory } from './sessions.js';

/** The caller of a request, as the session's sidecar is told. */
export interface Caller {
  address: string;
  port: number;
}

/** A session's local app refused (or the session had no accept stream in time): the pod's app serves. */
export class SessionUnavailable extends Error {
  readonly code = 'ESESSIONUNAVAILABLE';
}

/** Keep-alive connections kept idle per target: enough for a busy client, bounded for memory. */
const IDLE_PER_TARGET = 16;

/**
 * Connections from the agent to whoever answers a request: the pod's app on 127.0.0.1:<appPort>
 * (pooled keep-alive), or a session's local app through its accept streams. An accept stream,
 * once confirmed, is an ordinary connection to the local app; it is kept alive and reused for the
 * session's next requests, so a session costs a round trip to the developer's machine only when
 * it needs one more connection. HTTP/2 callers share one accept stream per session and port.
 */
export class Upstreams {
  private readonly appAgents = new Map<number, http.Agent>();
  private readonly appH2 = new Map<number, ClientHttp2Session>();
  private readonly links = new Map<AgentSession, SessionLink>();
  private waiters: (() => void)[] = [];

  constructor(
    private readonly sessions: SessionDirectory,
    private readonly counters: AgentCounters,
    private readonly waitMs: number,
  ) {}

  appAgent(appPort: number): http.Agent {
    let agent = this.appAgents.get(appPort);
    if (!agent) {
      agent = new http.Agent({ keepAlive: true, maxFreeSockets: IDLE_PER_TARGET, scheduling: 'lifo' });
      this.appAgents.set(appPort, agent);
    }
    return agent;
  }

  sessionAgent(session: AgentSession, spec: InterceptSpec): http.Agent {
    return this.link(session).agent(spec, (caller) => this.openSessionStream(session, spec, caller));
  }

  /** An HTTP/2 connection to the pod's app (prior knowledge), shared by every caller of the port. */
  appHttp2(appPort: number): ClientHttp2Session {
    const cached = this.appH2.get(appPort);
    if (cached && !cached.closed && !cached.destroyed) return cached;
    const session = http2.connect(`http://127.0.0.1:${appPort}`, h2ClientOptions());
    session.on('error', () => {});
    session.once('close', () => {
      if (this.appH2.get(appPort) === session) this.appH2.delete(appPort);
    });
    session.once('goaway', () => {
      if (this.appH2.get(appPort) === session) this.appH2.delete(appPort);
    });
    this.appH2.set(appPort, session);
    return session;
  }

  /** An HTTP/2 connection to a session's local app; undefined when the session cannot serve. */
  sessionHttp2(
    session: AgentSession,
    spec: InterceptSpec,
    caller: Caller,
  ): Promise<ClientHttp2Session | undefined> {
    return this.link(session).http2(spec.appPort, async () => {
      const stream = await this.openSessionStream(session, spec, caller);
      if (!stream) return undefined;
      const h2 = http2.connect('http://devbox-session', {
        ...h2ClientOptions(),
        createConnection: () => stream,
      });
      h2.on('error', () => {});
      return h2;
    });
  }

  /** A raw connection to the pod's app (upgrades). */
  appSocket(appPort: number): Promise<net.Socket | undefined> {
    return new Promise((resolve) => {
      const socket = net.connect({ host: '127.0.0.1', port: appPort, allowHalfOpen: true, noDelay: true });
      socket.once('connect', () => {
        socket.removeAllListeners('error');
        resolve(socket);
      });
      socket.once('error', () => resolve(undefined));
    });
  }

  /**
   * A fresh connection to the session's local app: a pending accept stream, answered with the
   * caller's address and, when the sidecar confirms, only once its local app took it. Undefined
   * when the local app refused or no accept stream came in time.
   */
  async openSessionStream(
    session: AgentSession,
    spec: InterceptSpec,
    caller: Caller,
  ): Promise<Duplex | undefined> {
    const stream = await this.takeAccept(session);
    if (!stream) return undefined;
    const info: InboundInfo = {
      clientAddress: caller.address,
      clientPort: caller.port,
      interceptPort: spec.listenPort,
      appPort: spec.appPort,
    };
    try {
      stream.respond({ ':status': 200, ...inboundInfoHeaders(info) });
    } catch {
      return this.openSessionStream(session, spec, caller);
    }
    this.counters.track('inbound', stream);
    if (isConfirming(stream) && !(await confirmed(stream))) {
      this.counters.totals.localRefused++;
      stream.close();
      return undefined;
    }
    return asHttpSocket(stream);
  }

  /** Accept streams arrived or sessions changed: wakes requests waiting for an accept stream. */
  wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
    for (const session of this.links.keys()) if (session.closed) this.links.delete(session);
  }

  close(): void {
    for (const agent of this.appAgents.values()) agent.destroy();
    for (const h2 of this.appH2.values()) h2.destroy();
    this.links.clear();
    this.wake();
  }

  private link(session: AgentSession): SessionLink {
    let link = this.links.get(session);
    if (!link) {
      link = new SessionLink();
      this.links.set(session, link);
    }
    return link;
  }

  private async takeAccept(session: AgentSession): Promise<ServerHttp2Stream | undefined> {
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      if (!this.sessions.isAvailable(session)) return undefined;
      const stream = session.takeAccept();
      if (stream) return stream;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

/**
 * A session's connection pools, one per app port. They are dropped, not destroyed, when the
 * session ends: its accept streams end with it, and on Node 20 destroying streams of an HTTP/2
 * session that is closing corrupts nghttp2's memory accounting (the process aborts in
 * `Http2Session::CheckAllocatedSize`).
 */
class SessionLink {
  private readonly agents = new Map<number, http.Agent>();
  private readonly h2 = new Map<number, Promise<ClientHttp2Session | undefined>>();

  agent(spec: InterceptSpec, open: (caller: Caller) => Promise<Duplex | undefined>): http.Agent {
    let agent = this.agents.get(spec.appPort);
    if (!agent) {
      agent = new AcceptStreamAgent(open);
      this.agents.set(spec.appPort, agent);
    }
    return agent;
  }

  http2(
    appPort: number,
    open: () => Promise<ClientHttp2Session | undefined>,
  ): Promise<ClientHttp2Session | undefined> {
    const cached = this.h2.get(appPort);
    if (cached) {
      return cached.then((s) => {
        if (s && !s.closed && !s.destroyed) return s;
        if (this.h2.get(appPort) === cached) this.h2.delete(appPort);
        return this.http2(appPort, open);
      });
    }
    const opening = open();
    this.h2.set(appPort, opening);
    void opening.then((s) => {
      if (!s && this.h2.get(appPort) === opening) this.h2.delete(appPort);
    });
    return opening;
  }
}

/** Request options carry the caller so that a new accept stream is answered with its address. */
export interface CallerRequestOptions extends http.RequestOptions {
  caller: Caller;
}

/** An http.Agent whose connections are a session's accept streams. */
class AcceptStreamAgent extends http.Agent {
  constructor(private readonly open: (caller: Caller) => Promise<Duplex | undefined>) {
    super({ keepAlive: true, maxFreeSockets: IDLE_PER_TARGET, scheduling: 'lifo' });
  }

  override createConnection(
    options: CallerRequestOptions,
    callback: (err: Error | null, socket?: Duplex) => void,
  ): undefined {
    this.open(options.caller).then(
      (socket) => (socket ? callback(null, socket) : callback(new SessionUnavailable('session unavailable'))),
      (err: Error) => callback(err),
    );
    return undefined;
  }

  // An accept stream has no TCP keep-alive or event-loop reference of its own to set.
  override keepSocketAlive(): boolean {
    return true;
  }

  override reuseSocket(_socket: unknown, req: http.ClientRequest): void {
    req.reusedSocket = true;
  }
}

/**
 * Resolves true once the sidecar's first byte says its local app took the connection. Read in
 * paused mode, one byte, so that what follows stays buffered for the HTTP client.
 */
function confirmed(stream: ServerHttp2Stream): Promise<boolean> {
  return new Promise((resolve) => {
    const onReadable = () => {
      const first = stream.read(1) as Buffer | null;
      if (first === null) return;
      done();
      resolve(first[0] === ACCEPT_CONNECTED);
    };
    const onEnd = () => {
      done();
      resolve(false);
    };
    const done = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
  });
}

/**
 * Node's HTTP client treats its connection as a net.Socket: it calls a few socket-only methods
 * (keep-alive, no-delay, ref, destroySoon), which an accept stream neither has nor needs, and it
 * writes its request heads as strings. On Node 20 a string written to an HTTP/2 stream through
 * writev is freed before nghttp2 sends it (the bytes on the wire are garbage, and nghttp2's
 * memory accounting aborts the process later), so strings become Buffers first.
 */
function asHttpSocket(stream: ServerHttp2Stream): Duplex {
  const socket = stream as ServerHttp2Stream & Record<string, unknown>;
  const noop = () => socket;
  socket.setKeepAlive ??= noop;
  socket.setNoDelay ??= noop;
  socket.ref ??= noop;
  socket.unref ??= noop;
  socket.destroySoon ??= () => stream.end();
  const write = stream.write;
  socket.write = function writeBuffer(this: ServerHttp2Stream, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk === 'string') {
      const encoding = typeof rest[0] === 'string' ? (rest.shift() as BufferEncoding) : 'utf8';
      chunk = Buffer.from(chunk, encoding);
    }
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  };
  stream.on('error', () => {});
  // As a TCP socket without half-open does: once the local app has closed its side (an idle
  // keep-alive connection it timed out), ours closes too, so the pool drops it instead of
  // writing the next request into a connection nobody reads.
  stream.once('end', () => stream.end());
  return stream;
}

function h2ClientOptions(): http2.ClientSessionOptions {
  return { settings: H2_SETTINGS, maxSessionMemory: H2_MAX_SESSION_MEMORY_MB };
}
