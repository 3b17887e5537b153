/**
 * The sidecar's status endpoint: `GET /status` answers a JSON document
 * (see SidecarStatus in sidecar.ts), `GET /healthz` answers 200 when at least
 * one tunnel is up and 503 otherwise. Bound to loopback only.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { errorText } from '../util/errors.js';
import { listen } from '../util/listen.js';

export interface StatusServerOptions {
  address: string;
  port: number;
  snapshot: () => Promise<unknown>;
  healthy: () => boolean;
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
