/**
 * A deliberately tiny Kubernetes API client for the sidecar: GET of JSON, GET of a
 * watch stream and a JSON merge patch (renewing the session's Lease) over node:https, with a bearer token, a CA bundle and
 * an optional name checked against the server certificate. The sidecar bundle
 * must stay small and its memory low, so @kubernetes/client-node is not used here.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type tls from 'node:tls';
import { DevboxError } from '../../util/errors.js';
import { verifyServerAs } from '../../util/tls-name.js';

/** How to reach the API server; shared with the port-forward client. */
export interface KubeConnection {
  /** `https://host:port` (plain `http://` is accepted for tests). */
  server: string;
  /** Current bearer token; called on every request so a rotated token file is honoured. */
  token: () => string;
  /** PEM CA bundle; undefined means the system store. */
  ca?: string;
  /** Name to verify the server certificate against, when `server` is an address rewritten from it. */
  tlsServerName?: string;
}

/** Builds a connection from the sidecar config fields (token file re-read on each call). */
export function kubeConnection(opts: {
  apiServer: string;
  token?: string;
  tokenFile?: string;
  ca?: string;
  caFile?: string;
  tlsServerName?: string;
}): KubeConnection {
  const ca = opts.ca ?? (opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined);
  const token = opts.tokenFile ? () => readFileSync(opts.tokenFile!, 'utf8').trim() : () => opts.token ?? '';
  return { server: opts.apiServer, token, ca, tlsServerName: opts.tlsServerName };
}

/**
 * TLS options that verify the certificate against `tlsServerName` (or the URL's host)
 * and send SNI only when that name is a host name (RFC 6066 forbids IP addresses in SNI).
 */
export function tlsOptionsFor(
  conn: KubeConnection,
): Pick<tls.ConnectionOptions, 'ca' | 'servername' | 'checkServerIdentity'> {
  const url = new URL(conn.server);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (conn.tlsServerName) return { ca: conn.ca, ...verifyServerAs(conn.tlsServerName) };
  return isIP(host) ? { ca: conn.ca } : { ca: conn.ca, servername: host };
}

/** HTTP status failures keep the status code so callers can react to 410 Gone. */
export class KubeApiError extends DevboxError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(status === 401 || status === 403 ? 'FORBIDDEN' : 'TUNNEL', message);
    this.status = status;
  }
}

export interface KubeApi {
  /** GET and parse JSON; throws KubeApiError on a non-2xx status. */
  getJson(path: string, signal?: AbortSignal): Promise<unknown>;
  /** GET a streaming response (watch); resolves once headers arrive with status 200. */
  getStream(path: string, signal?: AbortSignal, idleTimeoutMs?: number): Promise<http.IncomingMessage>;
  /** PATCH with a JSON merge patch; throws KubeApiError on a non-2xx status. */
  mergePatch(path: string, patch: unknown, signal?: AbortSignal): Promise<unknown>;
}

export function createKubeApi(conn: KubeConnection): KubeApi {
  const url = new URL(conn.server);
  const secure = url.protocol === 'https:';
  const agent = secure
    ? new https.Agent({ keepAlive: true, maxSockets: 8, ...tlsOptionsFor(conn) })
    : new http.Agent({ keepAlive: true, maxSockets: 8 });
  const base = url.pathname.replace(/\/+$/, '');

  const request = (
    path: string,
    signal: AbortSignal | undefined,
    patch?: string,
  ): Promise<http.IncomingMessage> =>
    new Promise((resolve, reject) => {
      const req = (secure ? https : http).request(
        {
          protocol: url.protocol,
          hostname: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port || (secure ? 443 : 80),
          path: base + path,
          method: patch === undefined ? 'GET' : 'PATCH',
          agent,
          headers: {
            authorization: `Bearer ${conn.token()}`,
            accept: 'application/json',
            ...(patch === undefined ? {} : { 'content-type': 'application/merge-patch+json' }),
          },
          signal,
        },
        resolve,
      );
      req.on('error', reject);
      req.end(patch);
    });

  const failure = async (res: http.IncomingMessage, path: string): Promise<KubeApiError> => {
    const body = await readBody(res).catch(() => '');
    let message = body.slice(0, 300);
    try {
      const status = JSON.parse(body) as { message?: string };
      if (status.message) message = status.message;
    } catch {}
    const method = (res as { req?: { method?: string } }).req?.method ?? 'GET';
    return new KubeApiError(res.statusCode ?? 0, `${method} ${path}: HTTP ${res.statusCode}: ${message}`);
  };

  return {
    async getJson(path, signal) {
      const res = await request(path, signal);
      if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) throw await failure(res, path);
      return JSON.parse(await readBody(res));
    },
    async mergePatch(path, patch, signal) {
      const res = await request(path, signal, JSON.stringify(patch));
      if ((res.statusCode ?? 0) < 200 || (res.statusCode ?? 0) >= 300) throw await failure(res, path);
      return JSON.parse(await readBody(res));
    },
    async getStream(path, signal, idleTimeoutMs) {
      const res = await request(path, signal);
      if (res.statusCode !== 200) throw await failure(res, path);
      if (idleTimeoutMs) {
        res.socket.setTimeout(idleTimeoutMs, () =>
          res.destroy(new KubeApiError(0, `watch ${path} silent for ${idleTimeoutMs} ms`)),
        );
        res.on('close', () => res.socket?.setTimeout(0));
      }
      return res;
    },
  };
}

function readBody(res: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}
