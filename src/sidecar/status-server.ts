/**
 * The sidecar's status endpoint: `GET /status` answers a JSON document
 * (see SidecarStatus in sidecar.ts), `GET /healthz` answers 200 when at least
 * one tunnel is up and 503 otherwise. `POST /shares?ttl=<seconds>` makes a share
 * link key ({@link ShareGrant}) and `DELETE /shares` revokes them all, for callers
 * on the sidecar's own loopback only (`node sidecar.mjs share`, run by docker exec);
 * `PUT /local-routes` replaces the table of local routes (local-routes.ts); `POST
 * /inbound/drain` and `/inbound/resume` bracket a stop of the local app (inbound-drain.ts).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DevboxError, errorText } from '../util/errors.js';
import { listen } from '../util/listen.js';
import type { InboundDrain } from './inbound-drain.js';
import type { SessionShares } from './shares.js';

export interface StatusServerOptions {
  address: string;
  port: number;
  snapshot: () => Promise<unknown>;
  healthy: () => boolean;
  shares?: SessionShares;
  /** Takes a JSON body; throws when it is not a table of routes. */
  setLocalRoutes?: (body: unknown) => void;
  /** `POST /inbound/drain?timeoutMs=` and `POST /inbound/resume`, around a stop of the local app. */
  inbound?: InboundDrain;
}

export interface StatusServer {
  readonly port: number;
  close(): Promise<void>;
}

export async function startStatusServer(opts: StatusServerOptions): Promise<StatusServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const send = (code: number, body: unknown) => {
      const text = `${JSON.stringify(body, null, 2)}\n`;
      res.writeHead(code, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(text);
    };
    if (req.method === 'PUT' && path === '/local-routes' && opts.setLocalRoutes) {
      const set = opts.setLocalRoutes;
      // Routes redirect the app's traffic: only the sidecar itself may set them.
      if (!fromLoopback(req)) return send(403, { error: 'local routes are set from the sidecar itself' });
      readJson(req)
        .then((body) => {
          set(body);
          send(200, { ok: true });
        })
        .catch((err: unknown) => send(400, { error: errorText(err) }));
      return;
    }
    if (req.method === 'POST' && path.startsWith('/inbound/') && opts.inbound) {
      if (!fromLoopback(req)) return send(403, { error: 'the sidecar itself drains its app' });
      answerInbound(opts.inbound, path, req.url ?? '', send);
      return;
    }
    if (path === '/shares' && opts.shares) {
      answerShares(opts.shares, req, send);
      return;
    }
    if (req.method !== 'GET') return send(405, { error: 'only GET, and PUT /local-routes' });
    if (path === '/healthz') return send(opts.healthy() ? 200 : 503, { ok: opts.healthy() });
    if (path === '/' || path === '/status') {
      opts.snapshot().then(
        (body) => send(200, body),
        (err) => send(500, { error: errorText(err) }),
      );
      return;
    }
    send(404, { error: `unknown path ${path}; try /status or /healthz` });
  });
  server.keepAliveTimeout = 1000;
  await listen(server, { port: opts.port, host: opts.address });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const STATUS_OF: Partial<Record<DevboxError['code'], number>> = {
  BAD_INPUT: 400,
  CONFLICT: 409,
  TUNNEL: 503,
};

function answerShares(
  shares: SessionShares,
  req: http.IncomingMessage,
  send: (code: number, body: unknown) => void,
): void {
  if (!fromLoopback(req)) {
    send(403, { error: { code: 'FORBIDDEN', message: 'shares are made from the sidecar itself' } });
    return;
  }
  try {
    if (req.method === 'DELETE') send(200, { revoked: shares.revokeAll() });
    else if (req.method !== 'POST') send(405, { error: { code: 'BAD_INPUT', message: 'POST or DELETE' } });
    else {
      const ttl = new URL(req.url ?? '/', 'http://sidecar').searchParams.get('ttl');
      send(200, ttl === null ? shares.create() : shares.create(Number(ttl)));
    }
  } catch (err) {
    const code = err instanceof DevboxError ? err.code : 'INTERNAL';
    const hint = err instanceof DevboxError ? err.hint : undefined;
    send(STATUS_OF[code] ?? 500, {
      error: { code, message: errorText(err), ...(hint ? { hint } : {}) },
    });
  }
}

const DRAIN_TIMEOUT_MAX_MS = 30_000;

function answerInbound(
  inbound: InboundDrain,
  path: string,
  url: string,
  send: (code: number, body: unknown) => void,
): void {
  if (path === '/inbound/resume') {
    inbound.resume();
    send(200, { ok: true });
    return;
  }
  if (path !== '/inbound/drain') {
    send(404, { error: `unknown path ${path}` });
    return;
  }
  const asked = Number(new URL(url, 'http://sidecar').searchParams.get('timeoutMs') ?? 2000);
  const timeoutMs = Number.isFinite(asked) ? Math.min(Math.max(asked, 0), DRAIN_TIMEOUT_MAX_MS) : 2000;
  inbound.drain(timeoutMs).then(
    (result) => send(200, result),
    (err: unknown) => send(500, { error: errorText(err) }),
  );
}

function fromLoopback(req: http.IncomingMessage): boolean {
  const from = req.socket.remoteAddress ?? '';
  return from === '127.0.0.1' || from === '::1' || from === '::ffff:127.0.0.1';
}

const BODY_LIMIT = 1 << 20;

function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > BODY_LIMIT) {
        reject(new Error('body too large'));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch (err) {
        reject(err);
      }
    });
    req.on('error', reject);
  });
}
