// Loopback pieces for the agent's HTTP routing tests: an agent with one intercept port in front of
// a pod app, and sessions whose sidecar side is the real TunnelClient + inbound handler.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import type { RunningAgent } from '../../../src/agent/agent.js';
import { createInboundHandler, newInboundStats } from '../../../src/sidecar/inbound.js';
import type { TunnelClient } from '../../../src/tunnel/client.js';
import type { SessionRoute } from '../../../src/tunnel/route.js';
import type { Logger } from '../../../src/util/log.js';
import { eventually, type Fixtures } from '../tunnel/harness.js';

/** 128-bit keys (22 base64url characters and more). */
export const ALICE = 'YWxpY2UtcGVyc29uYWwta2V5LTE';
export const BOB = 'Ym9iLXBlcnNvbmFsLWtleS0yMjIy';

export const personal = (key: string): SessionRoute => ({ mode: 'filtered', headers: [], personalKey: key });

/** A Node HTTP/1.1 server on 127.0.0.1:0 that answers `<name> <method> <url>` unless `handler` answers. */
export async function httpApp(
  fx: Fixtures,
  name: string,
  handler?: (req: IncomingMessage, res: ServerResponse) => boolean,
): Promise<{ port: number; server: http.Server; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req);
    if (handler?.(req, res)) return;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      res.setHeader('x-served-by', name);
      res.end(`${name} ${req.method} ${req.url}${body ? ` ${body}` : ''}`);
    });
  });
  return { port: await listenOn(fx, server), server, seen };
}

/** A cleartext HTTP/2 server (prior knowledge) on 127.0.0.1:0. */
export async function h2App(
  fx: Fixtures,
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<number> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => {});
    onStream(stream, headers);
  });
  server.on('session', (s) => s.on('error', () => {}));
  return listenOn(fx, server);
}

export async function listenOn(
  fx: Fixtures,
  server: net.Server | http.Server | http2.Http2Server,
): Promise<number> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fx.add(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

/** An agent whose one intercept port fronts `appPort`; returns it and the port callers use. */
export async function agentFor(
  fx: Fixtures,
  appPort: number,
  log?: Logger,
): Promise<{ agent: RunningAgent; port: number }> {
  const agent = await fx.agent({ intercepts: [{ listenPort: 0, appPort }] }, log);
  return { agent, port: agent.intercepts[0]!.listenPort };
}

/** A session with `route` whose local app listens on `localPort`; resolves once it accepts. */
export async function sessionTo(
  fx: Fixtures,
  agent: RunningAgent,
  route: SessionRoute | undefined,
  localPort: number,
  sessionId?: string,
): Promise<TunnelClient> {
  const client = await fx.client(agent, { ...(route ? { route } : {}), ...(sessionId ? { sessionId } : {}) });
  const appPort = agent.intercepts[0]!.appPort;
  const inbound = createInboundHandler({
    interceptPorts: [{ port: appPort, appPort: localPort }],
    stats: newInboundStats(),
    onError: () => {},
  });
  client.startAccepting((stream, info) => inbound({ stream, confirm: true, ...info }), 4, { confirm: true });
  await eventually(async () => (await client.stats()).open.acceptPending >= 4, 3_000, 'accept pool');
  return client;
}

/** One HTTP/1.1 request on `agent` (keep-alive when an agent is given); resolves with status, headers, body. */
export function request(
  port: number,
  opts: {
    path?: string;
    method?: string;
    headers?: http.OutgoingHttpHeaders;
    body?: string;
    agent?: http.Agent;
  } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? '/',
        method: opts.method ?? 'GET',
        headers: opts.headers,
        agent: opts.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
            reused: req.reusedSocket,
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Writes `data` on a raw connection and collects what comes back until `done(text)` holds or the peer closes. */
export async function rawExchange(
  port: number,
  data: string | Buffer,
  done: (text: string) => boolean = () => false,
  timeoutMs = 5_000,
): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  let text = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer in ${timeoutMs} ms; got ${JSON.stringify(text.slice(0, 500))}`));
    }, timeoutMs);
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (done(text)) {
        clearTimeout(timer);
        socket.destroy();
        resolve(text);
      }
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.write(data);
  });
}

/** A logger that keeps every line, to check what the agent logs. */
export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const write = (level: string) => (msg: string, fields?: Record<string, unknown>) => {
    lines.push(`${level} ${msg} ${fields ? JSON.stringify(fields) : ''}`);
  };
  return { lines, debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}
