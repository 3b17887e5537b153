import { EventEmitter } from 'node:events';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { Duplex, Readable } from 'node:stream';
import { DevboxError, errorText } from '../util/errors.js';
import { ControlDecoder, encodeControl } from './control.js';
import { StreamRefusedError } from './errors.js';
import { encodeFrame, FRAME_PAYLOAD_MAX, LengthPrefixDecoder } from './framing.js';
import {
  type AgentStats,
  type ControlMessage,
  DNS_MESSAGE_MAX,
  formatTarget,
  H2_CONNECTION_WINDOW,
  H2_MAX_SESSION_MEMORY_MB,
  H2_SETTINGS,
  HEADERS,
  type HelloMessage,
  type InboundInfo,
  PATHS,
  PROTOCOL_VERSION,
  parseInboundInfo,
} from './protocol.js';
import { tuneReceiveWindow } from './receive-window.js';
import { encodeRoute, ROUTE_HEADER, type SessionRoute } from './route.js';
import { agentProof, isNonce, newNonce, proofMatches, sidecarProof } from './session-proof.js';
import type { Share } from './share.js';

/** Options of {@link TunnelClient.connect}. */
export interface TunnelClientOptions {
  /** The agent's session token (DEVBOX_AGENT_TOKEN of the agent). */
  token: string;
  /** How often to ping the agent; default 5 s. 0 disables pings. */
  pingIntervalMs?: number;
  /** Declare the tunnel dead after this long without a ping ack or control message; default 20 s. */
  pingTimeoutMs?: number;
  /** How long to wait for the agent's hello; default 15 s. */
  helloTimeoutMs?: number;
  /** Aborting it destroys the client (and fails `connect` if still pending). */
  signal?: AbortSignal;
  /** Which inbound requests this session takes; absent: every one (a global session). */
  route?: SessionRoute;
  /** The session's name, the key of its counters in the agent's stats. */
  sessionId?: string;
}

/** Options for opening one stream. */
export interface OpenOptions {
  /** Give up waiting for the agent's answer after this long; default 30 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Called with each inbound connection; `stream` is already answered and carries the bytes. */
export type InboundHandler = (stream: Duplex, info: InboundInfo) => void;

/** Handle returned by {@link TunnelClient.startAccepting}. */
export interface AcceptHandle {
  /** Accept streams waiting at the agent right now. */
  readonly pending: number;
  /** Stops accepting: the agent passes new connections to the in-pod app again. */
  stop(): void;
}

/**
 * One UDP flow through the agent. Emits `message` (Buffer) for each datagram from the target and
 * `close` (Error | undefined) once, when the flow ends (idle timeout, close(), tunnel loss).
 */
export class UdpFlow extends EventEmitter {
  private readonly decoder = new LengthPrefixDecoder();
  private ended = false;

  /** @internal */
  constructor(private readonly stream: ClientHttp2Stream) {
    super();
    stream.on('data', (chunk: Buffer) => {
      let datagrams: Buffer[];
      try {
        datagrams = this.decoder.push(chunk);
      } catch (err) {
        stream.destroy(err as Error);
        return;
      }
      for (const d of datagrams) this.emit('message', d);
    });
    stream.on('error', () => {});
    // The agent ends a flow (idle timeout) with END_STREAM: end ours too so that the stream closes.
    stream.on('end', () => this.close());
    stream.on('close', () => {
      this.ended = true;
      const rst = stream.rstCode;
      this.emit(
        'close',
        rst && rst !== http2.constants.NGHTTP2_NO_ERROR ? new Error(`udp flow reset (${rst})`) : undefined,
      );
    });
  }

  /** Sends one datagram; false when it was dropped (backpressure, oversize or closed flow). */
  send(datagram: Uint8Array): boolean {
    if (this.ended || this.stream.destroyed || this.stream.writableEnded) return false;
    if (datagram.length > FRAME_PAYLOAD_MAX) return false;
    if (this.stream.writableNeedDrain) return false;
    this.stream.write(encodeFrame(datagram));
    return true;
  }

  /** Ends the flow. */
  close(): void {
    if (!this.stream.destroyed) this.stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }
}

/**
 * The sidecar's end of the tunnel: an HTTP/2 client over any Duplex (a port-forward, or a TCP socket
 * in tests). Emits `goaway` when the agent starts shutting down (open streams may finish, new ones
 * fail: connect to the replacement pod now), and `close` (Error | undefined) once when the tunnel is
 * gone; `error` is emitted only when someone listens for it. Every open* call fails fast once the
 * tunnel is closed.
 */
export class TunnelClient extends EventEmitter {
  /** The agent's hello: its protocol version, hostname and intercepts. */
  readonly hello: HelloMessage;
  private readonly session: ClientHttp2Session;
  private readonly control: ClientHttp2Stream;
  private lastHeard = Date.now();
  private pingTimer: NodeJS.Timeout | undefined;
  private nextStatsId = 1;
  private acceptGeneration = 0;
  private readonly statsWaiters = new Map<
    number,
    { resolve(stats: AgentStats): void; reject(err: Error): void }
  >();
  private readonly acceptHandles = new Set<AcceptHandle>();
  private closeError: Error | undefined;
  private isClosed = false;
  private isDraining = false;

  private constructor(
    session: ClientHttp2Session,
    control: ClientHttp2Stream,
    hello: HelloMessage,
    opts: TunnelClientOptions,
  ) {
    super();
    this.session = session;
    this.control = control;
    this.hello = hello;
    const interval = opts.pingIntervalMs ?? 5_000;
    const timeout = opts.pingTimeoutMs ?? 20_000;
    if (interval > 0) {
      this.pingTimer = setInterval(() => this.pingTick(timeout), interval);
      this.pingTimer.unref();
    }
    session.on('close', () => this.finish());
    session.on('goaway', () => {
      this.isDraining = true;
      this.emit('goaway');
    });
    if (opts.signal) {
      const onAbort = () => this.destroy(new DevboxError('TUNNEL', 'tunnel closed: aborted'));
      if (opts.signal.aborted) onAbort();
      else opts.signal.addEventListener('abort', onAbort, { once: true });
    }
  }

  /**
   * Speaks HTTP/2 over `transport`, proves the token with the agent (the agent first) and waits for
   * its hello. Fails with FORBIDDEN (the peer did not prove the token), PROTOCOL (version mismatch,
   * naming both versions) or TUNNEL.
   */
  static connect(transport: Duplex, opts: TunnelClientOptions): Promise<TunnelClient> {
    return new Promise<TunnelClient>((resolve, reject) => {
      const helloTimeoutMs = opts.helloTimeoutMs ?? 15_000;
      let settled = false;
      let client: TunnelClient | undefined;
      const session = http2.connect('http://devbox', {
        createConnection: () => transport,
        settings: H2_SETTINGS,
        maxSessionMemory: H2_MAX_SESSION_MEMORY_MB,
      });
      let control: ClientHttp2Stream | undefined;
      const nonce = newNonce();
      /** Set once the agent's proof checked out and ours went out: only then may the agent speak. */
      let proofSent = false;
      const cleanup = () => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        session.off('error', onSessionError);
        session.off('close', onSessionClose);
        control?.off('error', onControlError);
        control?.off('response', onResponse);
      };
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        cleanup();
        session.on('error', () => {});
        session.destroy();
        transport.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new DevboxError('TIMEOUT', `the agent did not answer within ${helloTimeoutMs} ms`)),
        helloTimeoutMs,
      );
      const onAbort = () => fail(new DevboxError('TUNNEL', 'tunnel connect aborted'));
      const onSessionError = (err: Error) =>
        fail(new DevboxError('TUNNEL', `tunnel failed: ${errorText(err)}`, { cause: err }));
      const onSessionClose = () =>
        fail(new DevboxError('TUNNEL', 'the tunnel closed before the agent answered'));
      const onControlError = (err: Error) =>
        fail(new DevboxError('TUNNEL', `session stream failed: ${errorText(err)}`, { cause: err }));
      const onResponse = (headers: IncomingHttpHeaders) => {
        const status = Number(headers[':status']);
        if (status !== 200) return fail(sessionRefused(status, headers));
        const agentNonce = headers[HEADERS.agentNonce];
        const expected = isNonce(agentNonce as string | undefined)
          ? agentProof(opts.token, nonce, agentNonce as string)
          : undefined;
        if (!expected || !proofMatches(headers[HEADERS.agentProof], expected)) return fail(agentUnproved());
        proofSent = true;
        control!.write(
          encodeControl({
            type: 'session-proof',
            proof: sidecarProof(opts.token, agentNonce as string, nonce),
          }),
        );
      };
      const onHello = (hello: HelloMessage) => {
        if (settled) return;
        settled = true;
        cleanup();
        const ctl = control!;
        client = new TunnelClient(session, ctl, hello, opts);
        session.on('error', (err) => client?.destroy(err));
        ctl.on('error', () => {});
        // The agent ends its side when it shuts down (after GOAWAY): end ours so the stream closes,
        // and let the other streams drain. A control stream lost any other way ends the tunnel.
        ctl.on('end', () => ctl.end());
        ctl.on('close', () => {
          if (!client?.draining) client?.destroy(new DevboxError('TUNNEL', 'the agent closed the session'));
        });
        resolve(client);
      };

      if (opts.signal?.aborted) return onAbort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      session.on('error', onSessionError);
      session.on('close', onSessionClose);
      session.on('connect', () => {
        try {
          session.setLocalWindowSize(H2_CONNECTION_WINDOW);
        } catch {
          // Only throws on a destroyed session, which fails the connect anyway.
        }
        tuneReceiveWindow(session);
      });
      try {
        control = session.request(
          {
            ':method': 'POST',
            ':path': PATHS.session,
            [HEADERS.protocol]: String(PROTOCOL_VERSION),
            [HEADERS.sidecarNonce]: nonce,
            ...(opts.route ? { [ROUTE_HEADER]: encodeRoute(opts.route) } : {}),
            ...(opts.sessionId ? { [HEADERS.sessionId]: opts.sessionId } : {}),
          },
          { endStream: false },
        );
      } catch (err) {
        // e.g. a session id that is not a valid header value
        return fail(
          new DevboxError('BAD_INPUT', `cannot open the session: ${errorText(err)}`, { cause: err }),
        );
      }
      control.on('error', onControlError);
      control.on('response', onResponse);
      const decoder = new ControlDecoder();
      control.on('data', (chunk: Buffer) => {
        // An agent says nothing before it has our proof, which goes out only once its own proof
        // checked out. Bytes before that come from a peer that skipped the proof: its HEADERS and
        // DATA can arrive in one read, and Node emits 'data' before the deferred 'response'.
        if (!proofSent) return fail(agentUnproved());
        let messages: ControlMessage[];
        try {
          messages = decoder.push(chunk);
        } catch (err) {
          if (client) client.destroy(err as Error);
          else fail(err as Error);
          return;
        }
        for (const message of messages) {
          if (client) {
            client.onControl(message);
          } else if (message.type === 'hello' && message.protocol === PROTOCOL_VERSION) {
            onHello(message);
          } else {
            fail(new DevboxError('PROTOCOL', `the agent's first control message is not a valid hello`));
            return;
          }
        }
      });
    });
  }

  /** True once the tunnel is gone. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** True once the agent sent GOAWAY: no new stream will be accepted. */
  get draining(): boolean {
    return this.isDraining || this.isClosed;
  }

  /** Opens a TCP connection from the pod to `host:port`; resolves with its stream once connected. */
  async openTcp(host: string, port: number, opts: OpenOptions = {}): Promise<Duplex> {
    const stream = this.request(
      { ':method': 'POST', ':path': PATHS.tcp, [HEADERS.target]: formatTarget(host, port) },
      false,
    );
    await awaitOk(stream, opts, `tcp ${formatTarget(host, port)}`);
    return stream;
  }

  /** Opens a UDP flow from the pod to `host:port`. */
  async udpFlow(host: string, port: number, opts: OpenOptions & { idleMs?: number } = {}): Promise<UdpFlow> {
    const headers: http2.OutgoingHttpHeaders = {
      ':method': 'POST',
      ':path': PATHS.udp,
      [HEADERS.target]: formatTarget(host, port),
    };
    if (opts.idleMs !== undefined) headers[HEADERS.idleMs] = String(Math.round(opts.idleMs));
    const stream = this.request(headers, false);
    await awaitOk(stream, opts, `udp ${formatTarget(host, port)}`);
    return new UdpFlow(stream);
  }

  /** Resolves one DNS query (wire format) with the pod's resolver; resolves with the wire-format answer. */
  async dnsQuery(query: Uint8Array, opts: OpenOptions = {}): Promise<Buffer> {
    if (query.length > DNS_MESSAGE_MAX) throw new DevboxError('BAD_INPUT', 'DNS query too large');
    const stream = this.request({ ':method': 'POST', ':path': PATHS.dns }, false);
    stream.end(query);
    await awaitOk(stream, { timeoutMs: 10_000, ...opts }, 'dns');
    return readBody(stream, DNS_MESSAGE_MAX, opts.timeoutMs ?? 10_000);
  }

  /** A tar stream of a directory (or file) in the agent's file system. */
  async files(path: string, opts: OpenOptions = {}): Promise<Readable> {
    const stream = this.request(
      { ':method': 'GET', ':path': `${PATHS.files}?path=${encodeURIComponent(path)}` },
      true,
    );
    await awaitOk(stream, opts, `files ${path}`);
    return stream;
  }

  /**
   * Asks the agent to hand inbound connections of its intercept ports to `handler`, keeping
   * `poolSize` accept streams pending at the agent and replacing each used one at once.
   */
  startAccepting(handler: InboundHandler, poolSize = 8, options: { confirm?: boolean } = {}): AcceptHandle {
    const pending = new Set<ClientHttp2Stream>();
    let active = true;
    let backoff: NodeJS.Timeout | undefined;
    const generation = ++this.acceptGeneration;
    const open = () => {
      if (!active || this.isClosed || pending.size >= poolSize) return;
      let stream: ClientHttp2Stream;
      try {
        stream = this.request(
          {
            ':method': 'POST',
            ':path': PATHS.accept,
            [HEADERS.acceptGeneration]: String(generation),
            ...(options.confirm ? { [HEADERS.acceptConfirm]: '1' } : {}),
          },
          false,
        );
      } catch {
        return;
      }
      pending.add(stream);
      let answered = false;
      stream.on('response', (headers) => {
        answered = true;
        pending.delete(stream);
        const status = Number(headers[':status']);
        const info = parseInboundInfo(headers);
        if (status !== 200 || !info) {
          stream.close(http2.constants.NGHTTP2_CANCEL);
          retryLater();
          return;
        }
        open();
        try {
          handler(stream, info);
        } catch {
          stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
        }
      });
      stream.on('error', () => {});
      stream.on('close', () => {
        if (answered || !pending.delete(stream)) return;
        retryLater();
      });
    };
    const retryLater = () => {
      if (!active || this.isClosed || backoff) return;
      backoff = setTimeout(() => {
        backoff = undefined;
        while (active && !this.isClosed && pending.size < poolSize) {
          const before = pending.size;
          open();
          if (pending.size === before) break;
        }
      }, 500);
      backoff.unref();
    };
    for (let i = 0; i < poolSize; i++) open();
    const handle: AcceptHandle = {
      get pending() {
        return pending.size;
      },
      stop: () => {
        if (!active) return;
        active = false;
        this.acceptHandles.delete(handle);
        clearTimeout(backoff);
        this.sendControl({ type: 'accept-stop', generation });
        for (const stream of pending) stream.close(http2.constants.NGHTTP2_CANCEL);
        pending.clear();
      },
    };
    this.acceptHandles.add(handle);
    return handle;
  }

  /** The agent's counters. */
  stats(timeoutMs = 5_000): Promise<AgentStats> {
    if (this.isClosed) return Promise.reject(this.closedError());
    const id = this.nextStatsId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.statsWaiters.delete(id);
        reject(new DevboxError('TIMEOUT', 'the agent did not answer the stats request'));
      }, timeoutMs);
      this.statsWaiters.set(id, {
        resolve: (stats) => {
          clearTimeout(timer);
          resolve(stats);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.sendControl({ type: 'stats-request', id });
    });
  }

  /** Has the agent apply `share` for as long as this tunnel lives (agents with the `shares` feature). */
  share(share: Share): void {
    this.sendControl({ type: 'share', share });
  }

  revokeShare(key: string): void {
    this.sendControl({ type: 'share-revoke', key });
  }

  /**
   * Closes the tunnel gracefully (GOAWAY): open streams finish, no new ones start. Streams still
   * open after `graceMs` are torn down, so a peer that never ends its side cannot hold the caller.
   */
  close(graceMs = 5_000): Promise<void> {
    if (this.isClosed) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.destroy(), graceMs);
      timer.unref();
      this.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      for (const handle of this.acceptHandles) handle.stop();
      this.control.end();
      this.session.close();
    });
  }

  /** Tears the tunnel down at once. */
  destroy(err?: Error): void {
    if (this.isClosed) return;
    this.closeError ??= err;
    this.session.destroy();
    this.finish();
  }

  private finish(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    clearInterval(this.pingTimer);
    for (const handle of this.acceptHandles) handle.stop();
    if (!this.session.destroyed) this.session.destroy();
    const closedError = this.closedError();
    for (const waiter of this.statsWaiters.values()) waiter.reject(closedError);
    this.statsWaiters.clear();
    if (this.closeError && this.listenerCount('error') > 0) this.emit('error', this.closeError);
    this.emit('close', this.closeError);
  }

  private closedError(): DevboxError {
    return new DevboxError(
      'TUNNEL',
      `tunnel closed${this.closeError ? `: ${errorText(this.closeError)}` : ''}`,
      {
        cause: this.closeError,
      },
    );
  }

  private request(headers: http2.OutgoingHttpHeaders, endStream: boolean): ClientHttp2Stream {
    if (this.isClosed || this.session.closed || this.session.destroyed) throw this.closedError();
    return this.session.request(headers, { endStream });
  }

  private sendControl(message: ControlMessage): void {
    if (!this.control.writable) return;
    this.control.write(encodeControl(message));
  }

  private onControl(message: ControlMessage): void {
    this.lastHeard = Date.now();
    if (message.type === 'stats' && typeof message.id === 'number') {
      const waiter = this.statsWaiters.get(message.id);
      if (waiter && typeof message.stats === 'object' && message.stats !== null) {
        this.statsWaiters.delete(message.id);
        waiter.resolve(message.stats);
      }
    }
  }

  private pingTick(timeoutMs: number): void {
    if (this.isClosed) return;
    if (Date.now() - this.lastHeard > timeoutMs) {
      this.destroy(new DevboxError('TUNNEL', `the agent did not answer pings for ${timeoutMs} ms`));
      return;
    }
    try {
      this.session.ping((err) => {
        if (!err) this.lastHeard = Date.now();
      });
    } catch {
      // Too many outstanding pings: the timeout above decides.
    }
  }
}

/** The peer answered the session without proving it holds the token: it is not this session's agent. */
function agentUnproved(): DevboxError {
  return new DevboxError(
    'FORBIDDEN',
    "the pod's tunnel port did not prove it holds the session token: it is not this session's agent (nothing was revealed to it)",
    {
      hint: 'a pod matching the workload that is not its agent, or an agent re-injected with another token: check `devbox status`, or run `devbox up` again',
    },
  );
}

/** The error for a non-200 answer to the session request. */
function sessionRefused(status: number, headers: IncomingHttpHeaders): DevboxError {
  const text = typeof headers[HEADERS.error] === 'string' ? (headers[HEADERS.error] as string) : '';
  if (status === 403) {
    // Agents of protocol 1 checked a token header before the version, and this sidecar sends none.
    return new DevboxError(
      'PROTOCOL',
      `the agent refused the session${text ? ` (${text})` : ''}: it speaks an older tunnel protocol that wants the token itself, which this devbox no longer sends (protocol ${PROTOCOL_VERSION})`,
      {
        hint: 'end the session with `devbox down` and start it again, so the agent is replaced by this version',
      },
    );
  }
  if (status === 426) {
    return new DevboxError(
      'PROTOCOL',
      text || `tunnel protocol mismatch: the sidecar speaks ${PROTOCOL_VERSION}`,
      {
        hint: 'use the same devbox version for the agent and the sidecar (`devbox down`, then `devbox up`)',
      },
    );
  }
  if (status === 409) {
    return new DevboxError('CONFLICT', text || 'another session of this workload has the same filter', {
      hint: 'choose a different filter (--http-header, --http-path-prefix, --personal), or end the other session',
    });
  }
  if (status === 400) return new DevboxError('BAD_INPUT', text || 'the agent refused the session filter');
  return new DevboxError('TUNNEL', `the agent refused the session (${status}${text ? `: ${text}` : ''})`);
}

/** Waits for a stream's response headers; rejects unless the status is 200. */
function awaitOk(stream: ClientHttp2Stream, opts: OpenOptions, what: string): Promise<IncomingHttpHeaders> {
  return new Promise((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? 30_000;
    let done = false;
    const finish = (err: Error | undefined, headers?: IncomingHttpHeaders) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      stream.off('close', onClose);
      if (err) {
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
        reject(err);
      } else resolve(headers!);
    };
    const timer = setTimeout(
      () => finish(new DevboxError('TIMEOUT', `${what}: no answer from the agent within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onAbort = () => finish(new DevboxError('TUNNEL', `${what}: aborted`));
    const onClose = () =>
      finish(
        new DevboxError(
          'TUNNEL',
          `${what}: stream closed before the agent answered (code ${stream.rstCode})`,
        ),
      );
    if (opts.signal?.aborted) return onAbort();
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    stream.on('error', () => {});
    stream.on('close', onClose);
    stream.once('response', (headers) => {
      const status = Number(headers[':status']);
      if (status === 200) return finish(undefined, headers);
      const code =
        typeof headers[HEADERS.errorCode] === 'string'
          ? (headers[HEADERS.errorCode] as string)
          : `HTTP_${status}`;
      const text =
        typeof headers[HEADERS.error] === 'string' ? (headers[HEADERS.error] as string) : `status ${status}`;
      finish(new StreamRefusedError(status, code, `${what}: ${text}`));
    });
  });
}

/** Reads a whole body of at most `max` bytes. */
function readBody(stream: Readable, max: number, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new DevboxError('TIMEOUT', 'body not received in time'));
    }, timeoutMs);
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        clearTimeout(timer);
        stream.destroy();
        reject(new DevboxError('PROTOCOL', `body exceeds ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    stream.on('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks, size));
    });
    stream.on('error', (err) => {
      clearTimeout(timer);
      reject(new DevboxError('TUNNEL', `body failed: ${errorText(err)}`, { cause: err }));
    });
    stream.on('close', () => {
      clearTimeout(timer);
      reject(new DevboxError('TUNNEL', 'stream closed before its body ended'));
    });
  });
}
