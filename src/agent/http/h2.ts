import http2, {
  type ClientHttp2Session,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type net from 'node:net';
import { Duplex } from 'node:stream';
import { H2_MAX_SESSION_MEMORY_MB, type InterceptSpec } from '../../tunnel/protocol.js';
import type { AgentSession } from '../tunnel-server.js';
import { addForwarded, normalizeAddress } from './forwarded.js';
import type { RouterContext } from './http1.js';
import type { MirrorCopy } from './mirror.js';
import { chooseRoute } from './sessions.js';
import type { Caller } from './upstreams.js';

interface Connection {
  spec: InterceptSpec;
  caller: Caller;
}

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = http2.constants;

/**
 * HTTP/2 with prior knowledge (h2c, gRPC) on a port with filtered sessions, routed per stream:
 * Node's HTTP/2 server takes the caller's connection, and each stream is forwarded on one shared
 * HTTP/2 connection to the pod's app or to the session's local app, with flow control end to end,
 * trailers and resets carried through. A protocol error gets GOAWAY on that connection only.
 */
export class H2Router {
  private readonly server: http2.Http2Server;
  private readonly connections = new WeakMap<ServerHttp2Session, Connection>();
  private arriving: Connection | undefined;

  constructor(private readonly ctx: RouterContext) {
    this.server = http2.createServer({
      settings: { enablePush: false },
      maxSessionMemory: H2_MAX_SESSION_MEMORY_MB,
    });
    this.server.setTimeout(0);
    // 'session' is emitted synchronously by the 'connection' handler: `arriving` is that connection.
    this.server.on('session', (session) => {
      if (this.arriving) this.connections.set(session, this.arriving);
      session.on('error', () => {});
    });
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
    this.server.on('sessionError', () => {
      ctx.counters.totals.protocolErrors++;
    });
  }

  serve(socket: net.Socket, head: Buffer, spec: InterceptSpec): void {
    this.arriving = {
      spec,
      caller: { address: normalizeAddress(socket.remoteAddress), port: socket.remotePort ?? 0 },
    };
    try {
      // Node's HTTP/2 server reads a net.Socket's handle directly, past the bytes already read to
      // sniff the protocol: it is given a stream that replays them first.
      this.server.emit('connection', new Replayed(socket, head));
    } finally {
      this.arriving = undefined;
    }
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', () => {});
    const conn = this.connections.get(stream.session as ServerHttp2Session);
    if (!conn) {
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    const path = String(headers[':path'] ?? '/');
    const answer = this.ctx.rewriter.rewrite({
      protocol: 'h2',
      method: String(headers[':method'] ?? 'GET'),
      path,
      headers,
      clientAddress: conn.caller.address,
      interceptPort: conn.spec.listenPort,
    });
    if (answer) {
      stream.respond({ ...answer.headers, ':status': answer.status });
      stream.end(answer.body === undefined ? undefined : Buffer.from(answer.body));
      return;
    }
    const { session, mirrors } = chooseRoute(this.ctx.sessions.availableSessions(), headers, path);
    addForwarded(headers, conn.caller.address);
    delete headers.connection;
    const copy = mirrors.length ? this.mirror(headers, mirrors, conn) : undefined;
    void this.upstreamFor(session, conn).then(
      (upstream) => this.forward(stream, headers, upstream, copy),
      () => {
        copy?.abort();
        stream.close(NGHTTP2_INTERNAL_ERROR);
      },
    );
  }

  /**
   * Copies go to mirror sessions as HTTP/1.1 requests (a session's local app is reached through
   * one accept stream per copy); a local app that speaks only HTTP/2 refuses them, which costs
   * the caller nothing.
   */
  private mirror(
    headers: IncomingHttpHeaders,
    mirrors: AgentSession[],
    conn: Connection,
  ): MirrorCopy | undefined {
    const plain: IncomingHttpHeaders = {};
    for (const [name, value] of Object.entries(headers)) if (!name.startsWith(':')) plain[name] = value;
    plain.host ??= String(headers[':authority'] ?? '');
    return this.ctx.mirrors.copy(
      mirrors,
      conn.spec,
      { method: String(headers[':method'] ?? 'GET'), path: String(headers[':path'] ?? '/'), headers: plain },
      conn.caller,
    );
  }

  private async upstreamFor(
    session: AgentSession | undefined,
    conn: Connection,
  ): Promise<ClientHttp2Session> {
    if (session) {
      const h2 = await this.ctx.upstreams.sessionHttp2(session, conn.spec, conn.caller);
      if (h2) {
        session.requests.routed++;
        return h2;
      }
    }
    this.ctx.counters.totals.toApp = (this.ctx.counters.totals.toApp ?? 0) + 1;
    return this.ctx.upstreams.appHttp2(conn.spec.appPort);
  }

  private forward(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    upstream: ClientHttp2Session,
    copy: MirrorCopy | undefined,
  ): void {
    if (stream.destroyed || stream.closed) {
      copy?.abort();
      return;
    }
    let out: http2.ClientHttp2Stream;
    try {
      out = upstream.request(headers, { endStream: false, waitForTrailers: true });
    } catch {
      stream.close(NGHTTP2_REFUSED_STREAM);
      return;
    }
    out.on('error', () => {});
    let requestTrailers: IncomingHttpHeaders | undefined;
    let responseTrailers: IncomingHttpHeaders | undefined;
    stream.on('trailers', (t) => {
      requestTrailers = t;
    });
    out.on('wantTrailers', () => out.sendTrailers(withoutPseudo(requestTrailers)));
    stream.pipe(out);
    if (copy) {
      stream.on('data', (chunk: Buffer) => copy.write(chunk));
      stream.once('end', () => copy.end());
      stream.once('aborted', () => copy.abort());
    }
    out.on('response', (response) => {
      if (stream.destroyed || stream.closed) return;
      try {
        stream.respond(withoutConnectionHeaders(response), { waitForTrailers: true });
      } catch {
        out.close(NGHTTP2_CANCEL);
        return;
      }
      stream.on('wantTrailers', () => stream.sendTrailers(withoutPseudo(responseTrailers)));
      out.pipe(stream);
    });
    out.on('trailers', (t) => {
      responseTrailers = t;
    });
    out.on('close', () => {
      if (stream.destroyed || stream.closed) return;
      if (!stream.headersSent) {
        stream.respond({ ':status': 502 }, { endStream: true });
        return;
      }
      if (out.rstCode && out.rstCode !== http2.constants.NGHTTP2_NO_ERROR) stream.close(out.rstCode);
    });
    stream.on('close', () => {
      if (!out.closed && !out.destroyed) out.close(stream.rstCode || NGHTTP2_CANCEL);
    });
  }
}

function withoutPseudo(headers: IncomingHttpHeaders | undefined): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  if (!headers) return out;
  for (const [name, value] of Object.entries(headers)) if (!name.startsWith(':')) out[name] = value;
  return out;
}

function withoutConnectionHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ...headers };
  delete out.connection;
  delete out['keep-alive'];
  delete out['transfer-encoding'];
  return out;
}

/** A socket whose first bytes were already read: they are read again first. */
class Replayed extends Duplex {
  private readonly socket: net.Socket;

  constructor(socket: net.Socket, head: Buffer) {
    super({ allowHalfOpen: true });
    this.socket = socket;
    if (head.length) this.push(head);
    socket.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('close', () => this.destroy());
    socket.on('error', (err) => this.destroy(err));
    socket.resume();
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.socket.write(chunk, cb);
  }

  override _final(cb: () => void): void {
    this.socket.end(cb);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}
