import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { joinStreams } from '../../tunnel/pipe.js';
import type { InterceptSpec } from '../../tunnel/protocol.js';
import type { Logger } from '../../util/log.js';
import type { AgentCounters } from '../stats.js';
import type { AgentSession } from '../tunnel-server.js';
import { addForwarded, normalizeAddress, stripHopByHop } from './forwarded.js';
import type { MirrorCopy, Mirrors } from './mirror.js';
import type { RequestRewriter } from './rewriter.js';
import { chooseRoute, type SessionDirectory } from './sessions.js';
import type { Caller, CallerRequestOptions, Upstreams } from './upstreams.js';

/** Largest request header block; a larger one is answered 431, as most servers do. */
export const HEADER_BLOCK_MAX = 64 * 1024;
/** How long a body with `Expect: 100-continue` waits for the upstream's 100 before it is sent anyway. */
const EXPECT_WAIT_MS = 1_000;
/** Idle keep-alive connections are closed after this (nginx's default). */
const KEEP_ALIVE_TIMEOUT_MS = 75_000;

export interface RouterContext {
  sessions: SessionDirectory;
  upstreams: Upstreams;
  mirrors: Mirrors;
  rewriter: RequestRewriter;
  counters: AgentCounters;
  log: Logger;
}

interface Connection {
  spec: InterceptSpec;
  caller: Caller;
}

/**
 * HTTP/1.x on a port with filtered sessions, routed per request: Node's HTTP server parses the
 * caller's connection (keep-alive, pipelining with answers in order, chunked bodies, 100-continue)
 * and each request is forwarded with Node's HTTP client to the pod's app or a session, streaming
 * both ways. Upgrades (WebSocket and others) are routed on the upgrade request, then piped as bytes.
 * `Upgrade: h2c` is answered as plain HTTP/1.1: a server may ignore an upgrade (RFC 9110 §7.8,
 * RFC 9113 §3.1 leaves h2c upgrades to prior knowledge).
 */
export class Http1Router {
  private readonly server: http.Server;
  private readonly connections = new WeakMap<net.Socket, Connection>();

  constructor(private readonly ctx: RouterContext) {
    this.server = http.createServer({
      maxHeaderSize: HEADER_BLOCK_MAX,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      // Streamed requests may last as long as the caller wants, as with the app itself.
      requestTimeout: 0,
    });
    this.server.on('request', (req, res) => this.onRequest(req, res, false));
    this.server.on('checkContinue', (req, res) => this.onRequest(req, res, true));
    this.server.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket as net.Socket, head));
    this.server.on('clientError', (err, socket) => this.onClientError(err as NodeJS.ErrnoException, socket));
  }

  /** Serves a caller's connection whose first bytes, `head`, were read to tell its protocol. */
  serve(socket: net.Socket, head: Buffer, spec: InterceptSpec): void {
    this.connections.set(socket, {
      spec,
      caller: { address: normalizeAddress(socket.remoteAddress), port: socket.remotePort ?? 0 },
    });
    socket.unshift(head);
    this.server.emit('connection', socket);
    socket.resume();
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    const conn = this.connections.get(req.socket as net.Socket);
    if (!conn) {
      res.writeHead(500).end();
      return;
    }
    const method = req.method ?? 'GET';
    const path = req.url ?? '/';
    const headers = req.headers;
    const answer = this.ctx.rewriter.rewrite({
      protocol: 'http/1.1',
      method,
      path,
      headers,
      clientAddress: conn.caller.address,
      interceptPort: conn.spec.listenPort,
    });
    if (answer) {
      req.resume();
      res.writeHead(answer.status, answer.headers).end(answer.body);
      return;
    }
    const choice = chooseRoute(this.ctx.sessions.availableSessions(), headers, path);
    stripHopByHop(headers);
    addForwarded(headers, conn.caller.address);
    if (!expectsContinue) delete headers.expect;
    const mirror = choice.mirrors.length
      ? this.ctx.mirrors.copy(choice.mirrors, conn.spec, { method, path, headers }, conn.caller)
      : undefined;
    this.forward(req, res, conn, choice.session, { method, path, headers }, mirror);
  }

  private forward(
    req: IncomingMessage,
    res: ServerResponse,
    conn: Connection,
    session: AgentSession | undefined,
    request: { method: string; path: string; headers: IncomingHttpHeaders },
    mirror: MirrorCopy | undefined,
  ): void {
    const { upstreams, counters } = this.ctx;
    const options: CallerRequestOptions = {
      agent: session ? upstreams.sessionAgent(session, conn.spec) : upstreams.appAgent(conn.spec.appPort),
      host: '127.0.0.1',
      port: conn.spec.appPort,
      method: request.method,
      path: request.path,
      headers: request.headers,
      setHost: false,
      caller: conn.caller,
    };
    const out = http.request(options);
    let connected = false;
    let bodyStarted = false;
    const sendBody = () => {
      if (bodyStarted) return;
      bodyStarted = true;
      pumpBody(req, out, mirror);
    };
    out.once('socket', () => {
      connected = true;
      if (session) session.requests.routed++;
      else counters.totals.toApp = (counters.totals.toApp ?? 0) + 1;
      if (request.headers.expect === undefined) sendBody();
      // A server that ignores Expect waits for the body: send it after a while, as curl does.
      else setTimeout(sendBody, EXPECT_WAIT_MS).unref();
    });
    out.on('continue', () => {
      res.writeContinue();
      sendBody();
    });
    out.on('information', (info) => {
      if (info.statusCode === 103) res.writeEarlyHints(info.headers as Record<string, string | string[]>);
    });
    out.on('response', (upstream) => {
      const headers = upstream.headers;
      stripHopByHop(headers);
      res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, headers);
      upstream.on('data', (chunk: Buffer) => {
        if (!res.write(chunk)) upstream.pause();
      });
      res.on('drain', () => upstream.resume());
      upstream.on('end', () => {
        if (Object.keys(upstream.trailers).length > 0) res.addTrailers(upstream.trailers);
        res.end();
      });
      upstream.on('error', () => res.destroy());
      // An answer before the whole body (an error, or a final status after Expect) ends the exchange.
      if (!bodyStarted) req.resume();
    });
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (!connected && session && err.code === 'ESESSIONUNAVAILABLE') {
        this.forward(req, res, conn, undefined, request, mirror);
        return;
      }
      mirror?.abort();
      if (res.headersSent) res.destroy();
      else
        res
          .writeHead(502, { 'content-type': 'text/plain' })
          .end(`devbox: upstream failed: ${err.code ?? 'error'}\n`);
    });
    res.once('close', () => {
      if (!res.writableFinished) {
        out.destroy();
        mirror?.abort();
      }
    });
  }

  private onUpgrade(req: IncomingMessage, socket: net.Socket, head: Buffer): void {
    const conn = this.connections.get(socket);
    const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
    if (conn && upgrade.split(',').every((p) => p.trim() === 'h2c')) {
      this.reparseWithoutUpgrade(req, socket, head);
      return;
    }
    if (!conn) {
      socket.destroy();
      return;
    }
    const headers = req.headers;
    const path = req.url ?? '/';
    const answer = this.ctx.rewriter.rewrite({
      protocol: 'http/1.1',
      method: req.method ?? 'GET',
      path,
      headers,
      clientAddress: conn.caller.address,
      interceptPort: conn.spec.listenPort,
    });
    if (answer) {
      socket.end(rawResponse(answer.status, answer.headers ?? {}, answer.body));
      return;
    }
    const { session } = chooseRoute(this.ctx.sessions.availableSessions(), headers, path);
    addForwarded(headers, conn.caller.address);
    const rawHead = rawRequestHead(req, headers);
    void this.upgradeTo(session, conn).then(
      (upstream) => {
        if (!upstream) {
          socket.end(rawResponse(502, {}, 'devbox: upstream failed\n'));
          return;
        }
        upstream.write(rawHead);
        if (head.length) upstream.write(head);
        void joinStreams(socket, upstream);
      },
      () => socket.destroy(),
    );
  }

  private async upgradeTo(session: AgentSession | undefined, conn: Connection): Promise<Duplex | undefined> {
    if (session) {
      const stream = await this.ctx.upstreams.openSessionStream(session, conn.spec, conn.caller);
      if (stream) {
        session.requests.routed++;
        return stream;
      }
    }
    this.ctx.counters.totals.toApp = (this.ctx.counters.totals.toApp ?? 0) + 1;
    return this.ctx.upstreams.appSocket(conn.spec.appPort);
  }

  /** Puts the request back, minus its h2c upgrade, and lets a fresh parser read it as plain HTTP/1.1. */
  private reparseWithoutUpgrade(req: IncomingMessage, socket: net.Socket, head: Buffer): void {
    const headers = { ...req.headers };
    delete headers.upgrade;
    delete headers['http2-settings'];
    delete headers.connection;
    socket.unshift(Buffer.concat([rawRequestHead(req, headers), head]));
    this.server.emit('connection', socket);
    socket.resume();
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
    this.ctx.counters.totals.protocolErrors++;
    this.ctx.log.debug('malformed HTTP request', { code: err.code });
    // As Node's own server: an answer already under way cannot be followed by a 400.
    const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (!socket.writable || answering?.headersSent || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'HPE_URI_TOO_LONG' ? 414 : 400;
    socket.end(rawResponse(status, { connection: 'close' }));
  }
}

/** Moves a request body to the upstream request (and a mirror copy), with backpressure. */
function pumpBody(req: IncomingMessage, out: http.ClientRequest, mirror: MirrorCopy | undefined): void {
  req.on('data', (chunk: Buffer) => {
    mirror?.write(chunk);
    if (!out.write(chunk)) req.pause();
  });
  out.on('drain', () => req.resume());
  req.on('end', () => {
    mirror?.end();
    if (Object.keys(req.trailers).length > 0) out.addTrailers(req.trailers);
    out.end();
  });
  req.on('error', () => out.destroy());
}

function rawRequestHead(req: IncomingMessage, headers: IncomingHttpHeaders): Buffer {
  let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
  }
  return Buffer.from(`${head}\r\n`, 'latin1');
}

function rawResponse(
  status: number,
  headers: Record<string, string | string[]>,
  body?: string | Buffer,
): Buffer {
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.from(body);
  let head = `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? ''}\r\n`;
  for (const [name, value] of Object.entries({ ...headers, 'content-length': String(payload.length) })) {
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
  }
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), payload]);
}
