import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKubeClient, type KubeClient } from '../../../src/kube/client.js';
import { loadKubeConfig } from '../../../src/kube/kubeconfig.js';

export interface Recorded {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export type Handler = (req: Recorded, res: http.ServerResponse) => void | Promise<void>;

/** A loopback HTTP server answering like the API server, recording every request. */
export class FakeApi {
  readonly requests: Recorded[] = [];
  private readonly routes: { method: string; path: string | RegExp; handle: Handler }[] = [];
  private readonly server = http.createServer((req, res) => this.dispatch(req, res));
  private dir = '';
  port = 0;

  on(method: string, path: string | RegExp, handle: Handler): this {
    this.routes.unshift({ method, path, handle });
    return this;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Writes a kubeconfig for this server with the given user block (YAML lines). */
  kubeconfig(userLines: string[] = ['    token: tok']): string {
    this.dir ||= mkdtempSync(join(tmpdir(), 'devbox-fakeapi-'));
    const file = join(this.dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
    writeFileSync(
      file,
      [
        'apiVersion: v1',
        'kind: Config',
        'current-context: test',
        'clusters:',
        '- name: fake',
        '  cluster:',
        `    server: http://127.0.0.1:${this.port}`,
        '    insecure-skip-tls-verify: true',
        'contexts:',
        '- name: test',
        '  context: {cluster: fake, user: dev, namespace: shop}',
        'users:',
        '- name: dev',
        '  user:',
        ...userLines,
        '',
      ].join('\n'),
    );
    return file;
  }

  client(userLines?: string[]): KubeClient {
    return createKubeClient({ loaded: loadKubeConfig({ kubeconfig: this.kubeconfig(userLines) }, {}) });
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  private async dispatch(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += chunk;
    const url = new URL(req.url ?? '/', 'http://x');
    const rec: Recorded = {
      method: req.method ?? '',
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body,
    };
    this.requests.push(rec);
    const route = this.routes.find(
      (r) =>
        r.method === rec.method && (typeof r.path === 'string' ? r.path === rec.path : r.path.test(rec.path)),
    );
    if (!route) return json(res, 404, status(404, 'NotFound', `no route for ${rec.method} ${rec.path}`));
    await route.handle(rec, res);
  }
}

export function json(res: http.ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

export function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', status: 'Failure', code, reason, message };
}
