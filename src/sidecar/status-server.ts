/**
 * The sidecar's status endpoint: `GET /status` answers a JSON document
 * (see SidecarStatus in sidecar.ts), `GET /healthz` answers 200 when at least
 * one tunnel is up and 503 otherwise. `POST /shares?ttl=<seconds>` makes a share
 * link key ({@link ShareGrant}) and `DELETE /shares` revokes them all, for callers
 * on the sidecar's own loopback only (`node sidecar.mjs share`, run by docker exec).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DevboxError, errorText } from '../util/errors.js';
import { listen } from '../util/listen.js';
import type { SessionShares } from './shares.js';

export interface StatusServerOptions {
  address: string;
  port: number;
  snapshot: () => Promise<unknown>;
  healthy: () => boolean;
  shares?: SessionShares;
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
    if (path === '/shares' && opts.shares) {
      answerShares(opts.shares, req, send);
      return;
    }
    if (req.method !== 'GET') return send(405, { error: 'only GET' });
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
  const from = req.socket.remoteAddress ?? '';
  if (from !== '127.0.0.1' && from !== '::1' && from !== '::ffff:127.0.0.1') {
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
