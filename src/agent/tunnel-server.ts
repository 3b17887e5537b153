import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { ControlDecoder, encodeControl } from '../tunnel/control.js';
import {
  type ControlMessage,
  H2_CONNECTION_WINDOW,
  H2_MAX_SESSION_MEMORY_MB,
  H2_SETTINGS,
  HEADERS,
  type HelloMessage,
  PATHS,
  PROTOCOL_VERSION,
  type SessionStats,
} from '../tunnel/protocol.js';
import { tuneReceiveWindow } from '../tunnel/receive-window.js';
import {
  describeRoute,
  GLOBAL_ROUTE,
  ROUTE_HEADER,
  type RouteMatcher,
  type SessionRoute,
} from '../tunnel/route.js';
import { agentProof, isNonce, newNonce, proofMatches, sidecarProof } from '../tunnel/session-proof.js';
import { shareOf } from '../tunnel/share.js';
import { errorText } from '../util/errors.js';
import { listen } from '../util/listen.js';
import type { Logger } from '../util/log.js';
import type { AgentConfig } from './config.js';
import { headerText, replyError, type StreamHandlers } from './handlers.js';
import type { ShareTable } from './http/share.js';
import { markConfirming } from './intercept.js';
import { admitRoute, sessionIdOf } from './session-routes.js';
import type { AgentCounters } from './stats.js';

/** An unauthenticated connection gets this long to open its session stream. */
/** A connection with no session after this long is closed (garbage, or a peer gone silent). */
export const HELLO_TIMEOUT_MS = 10_000;
/** Accept streams one session may keep pending. */
const ACCEPT_PENDING_MAX = 1024;
/** How often silence is judged (reading a byte counter costs nothing). */
const SILENCE_CHECK_MS = 100;

/** One sidecar connection (one HTTP/2 session) and its state. */
export class AgentSession {
  readonly id: number;
  readonly h2: ServerHttp2Session;
  readonly createdAt = Date.now();
  authenticated = false;
  /** Accept streams of a generation at or below this one are refused (see `accept-stop`). */
  stoppedGeneration = 0;
  /** Highest accept generation seen. */
  acceptGeneration = 0;
  control: ServerHttp2Stream | undefined;
  lastHeard = Date.now();
  lastBytes = -1;
  wasSuspect = false;
  /** Which inbound requests this session takes (set when the session opens). */
  route: SessionRoute = GLOBAL_ROUTE;
  matcher: RouteMatcher | undefined;
  /** The sidecar's name for the session (`devbox-session-id`), the key of its stats. */
  sessionId: string | undefined;
  /** Requests routed to it, copies sent to it (mirror), copies dropped. */
  readonly requests = { routed: 0, mirrored: 0, dropped: 0 };
  private readonly pending: ServerHttp2Stream[] = [];

  constructor(id: number, h2: ServerHttp2Session) {
    this.id = id;
    this.h2 = h2;
  }

  get closed(): boolean {
    return this.h2.closed || this.h2.destroyed;
  }

  /** True when a live, authenticated sidecar asked for inbound traffic and has not stopped. */
  get accepting(): boolean {
    return this.authenticated && !this.closed && this.acceptGeneration > this.stoppedGeneration;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Queues an accept stream; false when the session already has too many. */
  addAccept(stream: ServerHttp2Stream): boolean {
    if (this.pending.length >= ACCEPT_PENDING_MAX) return false;
    this.pending.push(stream);
    stream.once('close', () => {
      const i = this.pending.indexOf(stream);
      if (i >= 0) this.pending.splice(i, 1);
    });
    return true;
  }

  takeAccept(): ServerHttp2Stream | undefined {
    for (;;) {
      const stream = this.pending.shift();
      if (!stream) return undefined;
      if (!stream.destroyed && !stream.closed) return stream;
    }
  }
}

/** What the tunnel server needs from the rest of the agent. */
export interface TunnelServerOptions {
  config: AgentConfig;
  log: Logger;
  counters: AgentCounters;
  handlers: StreamHandlers;
  hello(): HelloMessage;
  /** Accept streams became available, or the set of accepting sessions changed. */
  onRoutingChanged(): void;
  /** Inbound connections now waiting for an accept stream (for stats). */
  queued(): number;
  /** Where sessions' `share` messages go; each session's shares end with it. */
  shares?: ShareTable;
}

/**
 * The agent's tunnel endpoint: h2c on 127.0.0.1:<tunnel port>, one {@link AgentSession} per
 * connection, dispatch of streams by path, session liveness.
 */
export class TunnelServer {
  private readonly h2server: http2.Http2Server;
  private readonly netServer: net.Server;
  private readonly sessions: AgentSession[] = [];
  private readonly byH2 = new WeakMap<ServerHttp2Session, AgentSession>();
  private nextId = 1;
  private ticker: NodeJS.Timeout | undefined;
  private lastPing = 0;

  constructor(private readonly opts: TunnelServerOptions) {
    this.h2server = http2.createServer({ settings: H2_SETTINGS, maxSessionMemory: H2_MAX_SESSION_MEMORY_MB });
    this.h2server.setTimeout(0);
    this.h2server.on('session', (h2) => this.onSession(h2));
    this.h2server.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.h2server.on('sessionError', (err) => opts.log.debug('session error', { error: errorText(err) }));
    this.netServer = net.createServer({ noDelay: true }, (socket) => this.handleConnection(socket));
    this.netServer.on('error', (err) => opts.log.error('tunnel listener failed', { error: errorText(err) }));
  }

  /** Starts listening; resolves with the bound address. */
  async listen(): Promise<AddressInfo> {
    await listen(this.netServer, { host: this.opts.config.tunnelHost, port: this.opts.config.tunnelPort });
    // Silence is judged every 100 ms (bytes read since the last look); pings go out at their own interval.
    this.ticker = setInterval(() => this.tick(), Math.min(SILENCE_CHECK_MS, this.opts.config.pingIntervalMs));
    this.ticker.unref();
    return this.netServer.address() as AddressInfo;
  }

  /** Serves one byte stream as a tunnel connection (the listener calls this; tests may too). */
  handleConnection(socket: Duplex): void {
    socket.on('error', () => {});
    this.h2server.emit('connection', socket);
  }

  /** Live sessions, oldest first. */
  get sessionCount(): number {
    return this.sessions.length;
  }

  get acceptPending(): number {
    return this.sessions.reduce((n, s) => n + s.pendingCount, 0);
  }

  /** True when some live, non-suspect global session accepts inbound connections. */
  hasAcceptingSession(): boolean {
    return this.sessions.some((s) => s.route.mode === 'global' && this.isAvailable(s));
  }

  /** True when some live, non-suspect filtered or mirror session accepts: ports then route per request. */
  hasRoutingSession(): boolean {
    return this.sessions.some((s) => s.route.mode !== 'global' && this.isAvailable(s));
  }

  /** Sessions that take inbound traffic now, oldest first. */
  availableSessions(): AgentSession[] {
    return this.sessions.filter((s) => this.isAvailable(s));
  }

  isAvailable(s: AgentSession): boolean {
    return s.accepting && !this.isSuspect(s);
  }

  /** Per-session request counters, keyed by session id. */
  sessionStats(): Record<string, SessionStats> {
    const out: Record<string, SessionStats> = {};
    for (const s of this.sessions) {
      if (!s.authenticated) continue;
      out[s.sessionId ?? `#${s.id}`] = { mode: s.route.mode, filter: describeRoute(s.route), ...s.requests };
    }
    return out;
  }

  /** A pending accept stream of the newest live, non-suspect global session that has one. */
  takeAcceptStream(): ServerHttp2Stream | undefined {
    for (let i = this.sessions.length - 1; i >= 0; i--) {
      const s = this.sessions[i]!;
      if (s.route.mode !== 'global' || !this.isAvailable(s)) continue;
      const stream = s.takeAccept();
      if (stream) return stream;
    }
    return undefined;
  }

  /** Stops listening, sends GOAWAY, waits up to `graceMs` for streams to finish, then destroys the rest. */
  async close(graceMs: number): Promise<void> {
    clearInterval(this.ticker);
    // close() only stops accepting; its callback waits for the sessions below to end.
    const listenerClosed = new Promise<void>((resolve) => this.netServer.close(() => resolve()));
    const live = this.sessions.filter((s) => !s.closed);
    await Promise.all(
      live.map(
        (s) =>
          new Promise<void>((resolve) => {
            const timer = setTimeout(() => {
              s.h2.destroy();
              resolve();
            }, graceMs);
            timer.unref();
            s.h2.once('close', () => {
              clearTimeout(timer);
              resolve();
            });
            // Pending accept streams would hold the session open: nothing will answer them now.
            for (let stream = s.takeAccept(); stream; stream = s.takeAccept()) {
              stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
            }
            // GOAWAY first: the sidecar then knows that the end of the control stream is a drain.
            s.h2.close();
            s.control?.end();
          }),
      ),
    );
    await listenerClosed;
  }

  private isSuspect(s: AgentSession): boolean {
    return Date.now() - s.lastHeard > this.opts.config.suspectAfterMs;
  }

  private onSession(h2: ServerHttp2Session): void {
    const session = new AgentSession(this.nextId++, h2);
    this.byH2.set(h2, session);
    this.sessions.push(session);
    h2.on('error', (err) =>
      this.opts.log.debug('session error', { session: session.id, error: errorText(err) }),
    );
    h2.on('frameError', (type, code) =>
      this.opts.log.debug('frame error', { session: session.id, type, code }),
    );
    h2.on('connect', () => {
      try {
        h2.setLocalWindowSize(H2_CONNECTION_WINDOW);
      } catch {
        // destroyed already
      }
    });
    h2.once('close', () => {
      const i = this.sessions.indexOf(session);
      if (i >= 0) this.sessions.splice(i, 1);
      if (session.authenticated) this.opts.log.info('session closed', { session: session.id });
      this.opts.onRoutingChanged();
    });
    try {
      h2.setLocalWindowSize(H2_CONNECTION_WINDOW);
    } catch {
      // not connected yet: the 'connect' handler does it
    }
    tuneReceiveWindow(h2);
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', (err) => this.opts.log.debug('stream error', { error: errorText(err) }));
    const session = this.byH2.get(stream.session as ServerHttp2Session);
    if (!session) {
      stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    const path = headerText(headers, ':path') ?? '';
    const pathname = path.split('?', 1)[0];
    try {
      if (pathname === PATHS.session) {
        this.openSession(session, stream, headers);
        return;
      }
      if (!session.authenticated) {
        replyError(stream, 401, 'UNAUTHENTICATED', `open ${PATHS.session} first`);
        return;
      }
      const { handlers } = this.opts;
      switch (pathname) {
        case PATHS.tcp:
          this.run(handlers.tcp(stream, headers));
          return;
        case PATHS.udp:
          this.run(handlers.udp(stream, headers));
          return;
        case PATHS.dns:
          this.run(handlers.dns(stream, headers));
          return;
        case PATHS.files:
          this.run(handlers.files(stream, headers));
          return;
        case PATHS.accept:
          this.addAccept(session, stream, headers);
          return;
        default:
          replyError(stream, 404, 'ENOENT', `unknown path ${pathname}`);
      }
    } catch (err) {
      this.contain(stream, err);
    }
  }

  private run(work: Promise<void>): void {
    work.catch((err) => {
      this.opts.counters.totals.protocolErrors++;
      this.opts.log.warn('stream handler failed', { error: errorText(err) });
    });
  }

  private contain(stream: ServerHttp2Stream, err: unknown): void {
    this.opts.counters.totals.protocolErrors++;
    this.opts.log.warn('stream failed', { error: errorText(err) });
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }

  private openSession(session: AgentSession, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    if (session.control) {
      replyError(stream, 409, 'EEXIST', 'this connection already has a session');
      return;
    }
    const theirs = headerText(headers, HEADERS.protocol) ?? 'none';
    if (theirs !== String(PROTOCOL_VERSION)) {
      const message = `tunnel protocol mismatch: the sidecar speaks version ${theirs}, the agent speaks version ${PROTOCOL_VERSION}`;
      this.opts.log.warn('session refused: protocol mismatch', { session: session.id, sidecar: theirs });
      replyError(stream, 426, 'EPROTO', message);
      session.h2.close();
      return;
    }
    const sidecarNonce = headerText(headers, HEADERS.sidecarNonce);
    if (!isNonce(sidecarNonce)) {
      replyError(stream, 400, 'EINVAL', `${HEADERS.sidecarNonce} must be 32 bytes in base64url`);
      session.h2.close();
      return;
    }
    const sessionId = sessionIdOf(headerText(headers, HEADERS.sessionId));
    const admit = () =>
      admitRoute(
        headerText(headers, ROUTE_HEADER),
        sessionId,
        this.sessions.filter((s) => s !== session && s.authenticated && !s.closed),
      );
    const admission = admit();
    if (!admission.ok) {
      this.opts.log.warn('session refused', { session: session.id, reason: admission.message });
      replyError(stream, admission.status, admission.code, admission.message);
      session.h2.close();
      return;
    }
    const { token } = this.opts.config;
    const agentNonce = newNonce();
    session.control = stream;
    stream.respond({
      ':status': 200,
      [HEADERS.protocol]: String(PROTOCOL_VERSION),
      [HEADERS.agentNonce]: agentNonce,
      [HEADERS.agentProof]: agentProof(token, sidecarNonce, agentNonce),
    });
    const decoder = new ControlDecoder();
    stream.on('data', (chunk: Buffer) => {
      let messages: ControlMessage[];
      try {
        messages = decoder.push(chunk);
      } catch (err) {
        this.opts.counters.totals.protocolErrors++;
        this.opts.log.warn('bad control message; closing the session', {
          session: session.id,
          error: errorText(err),
        });
        session.h2.destroy();
        return;
      }
      for (const message of messages) {
        if (session.authenticated) {
          this.onControl(session, stream, message);
        } else if (
          message.type === 'session-proof' &&
          proofMatches(message.proof, sidecarProof(token, agentNonce, sidecarNonce))
        ) {
          // Sessions proved meanwhile may have taken the route (a second global one): ask again.
          const admitted = admit();
          if (!admitted.ok) {
            this.opts.log.warn('session refused', { session: session.id, reason: admitted.message });
            session.h2.destroy();
            return;
          }
          session.route = admitted.route;
          session.matcher = admitted.matcher;
          session.sessionId = sessionId;
          session.authenticated = true;
          stream.write(encodeControl(this.opts.hello()));
          this.opts.log.info('session opened', {
            session: session.id,
            ...(session.sessionId ? { id: session.sessionId } : {}),
            route: describeRoute(session.route),
          });
        } else {
          this.opts.log.warn('session refused: the sidecar did not prove it holds the token', {
            session: session.id,
          });
          session.h2.destroy();
          return;
        }
      }
    });
    const onGone = () => {
      session.stoppedGeneration = Number.MAX_SAFE_INTEGER;
      for (let s = session.takeAccept(); s; s = session.takeAccept())
        replyError(s, 503, 'ESTOPPED', 'session ended');
      // Our half of the control stream must end too: until it does, the HTTP/2 session (closed
      // gracefully below) waits for this stream, and the client's close() with it.
      if (stream.writable) stream.end();
      if (!session.closed) session.h2.close();
      this.opts.shares?.removeOwner(session.id);
      this.opts.onRoutingChanged();
    };
    stream.once('end', onGone);
    stream.once('close', onGone);
  }

  private onControl(session: AgentSession, control: ServerHttp2Stream, message: ControlMessage): void {
    switch (message.type) {
      case 'stats-request': {
        if (typeof message.id !== 'number') return;
        const stats = this.opts.counters.snapshot(
          this.sessionCount,
          this.acceptPending,
          this.opts.queued(),
          this.sessionStats(),
        );
        if (control.writable) control.write(encodeControl({ type: 'stats', id: message.id, stats }));
        return;
      }
      case 'accept-stop': {
        const generation = Number(message.generation);
        if (Number.isSafeInteger(generation) && generation > session.stoppedGeneration) {
          session.stoppedGeneration = generation;
          for (let s = session.takeAccept(); s; s = session.takeAccept()) {
            replyError(s, 503, 'ESTOPPED', 'accepting stopped');
          }
          this.opts.log.info('intercept stopped by the sidecar', { session: session.id });
          this.opts.onRoutingChanged();
        }
        return;
      }
      case 'share': {
        const share = shareOf(message);
        // The keys are secrets: the log says only that a share came or was malformed.
        if (!share) this.opts.log.warn('malformed share ignored', { session: session.id });
        else this.opts.shares?.add(share, session.id);
        return;
      }
      case 'share-revoke':
        if (typeof message.key === 'string') this.opts.shares?.remove(message.key, session.id);
        return;
      default:
        return; // unknown messages are ignored by design
    }
  }

  private addAccept(session: AgentSession, stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const generation = Number(headerText(headers, HEADERS.acceptGeneration) ?? '1');
    if (!Number.isSafeInteger(generation) || generation <= session.stoppedGeneration) {
      replyError(stream, 503, 'ESTOPPED', 'accepting stopped');
      return;
    }
    if (!session.addAccept(stream)) {
      replyError(stream, 429, 'EBUSY', 'too many pending accept streams');
      return;
    }
    if (headerText(headers, HEADERS.acceptConfirm) === '1') markConfirming(stream);
    const wasAccepting = session.accepting;
    if (generation > session.acceptGeneration) session.acceptGeneration = generation;
    if (!wasAccepting) this.opts.log.info('intercept active', { session: session.id });
    this.opts.onRoutingChanged();
  }

  private tick(): void {
    const now = Date.now();
    const pingDue = now - this.lastPing >= this.opts.config.pingIntervalMs;
    if (pingDue) this.lastPing = now;
    for (const s of [...this.sessions]) {
      const bytes = (s.h2.socket as { bytesRead?: unknown } | undefined)?.bytesRead;
      if (typeof bytes === 'number' && bytes !== s.lastBytes) {
        s.lastBytes = bytes;
        s.lastHeard = now;
      }
      if (!s.authenticated && now - s.createdAt > HELLO_TIMEOUT_MS) {
        s.h2.destroy();
        continue;
      }
      if (now - s.lastHeard > this.opts.config.sessionTimeoutMs) {
        this.opts.log.warn('session silent; dropping it', { session: s.id, silentMs: now - s.lastHeard });
        s.h2.destroy();
        continue;
      }
      const suspect = this.isSuspect(s);
      if (suspect !== s.wasSuspect) {
        s.wasSuspect = suspect;
        if (s.authenticated) {
          this.opts.log.warn(
            suspect ? 'session silent; passing inbound traffic to the app' : 'session heard again',
            {
              session: s.id,
            },
          );
        }
        this.opts.onRoutingChanged();
      }
      if (!pingDue) continue;
      try {
        s.h2.ping((err) => {
          if (!err) s.lastHeard = Date.now();
        });
      } catch {
        // too many pings in flight: silence is judged above
      }
    }
  }
}
