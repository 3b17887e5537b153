/**
 * Requests to the Kubernetes API server, for the CLI and the sidecar alike: plain JSON
 * over node:http(s) with a keep-alive agent, reads retried when the server is busy or a
 * pooled connection was reset, failures turned into KubeApiError / NO_CLUSTER errors, and
 * streaming GETs for watches. Where the credentials come from is the caller's
 * (ApiEndpoint): a kubeconfig context for the CLI, a minted token for the sidecar.
 *
 * No generated client: their models drop fields they do not know and turn timestamps into
 * Dates, which would break restoring objects byte for byte, and the sidecar bundle must
 * stay small, so @kubernetes/client-node is never imported here.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { DevboxError } from '../../util/errors.js';
import { debugLogger } from '../../util/log.js';
import { verifyServerAs } from '../../util/tls-name.js';
import { Backoff, sleep } from './backoff.js';
import { apiError, type ErrorHints, type RequestContext, transportError } from './errors.js';

const log = debugLogger('kube');

/** An API server and the credentials to use with it. */
export interface ApiEndpoint {
  /** `https://host:port[/prefix]` (plain `http://` for tests). */
  server: string;
  /** Whose credentials, for messages: `context "kind-dev"`. */
  context: string;
  /**
   * TLS material and auth headers for one request, asked for on every request so rotated
   * token files and credential plugins are honoured. An `agent` in the answer (a proxy) is
   * used as is; otherwise a keep-alive agent is built once from the first answer's TLS fields.
   */
  credentials(): Promise<https.RequestOptions>;
  hints?: ErrorHints;
  /**
   * Concurrent connections of requests. Default 16. Streams are not counted: a watch holds its
   * connection for minutes, and a few of them in the same pool would leave requests waiting
   * for a socket that never frees.
   */
  maxSockets?: number;
}

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Query;
  signal?: AbortSignal;
  /** Default 30 s. */
  timeoutMs?: number;
}

export interface StreamOptions {
  query?: Query;
  signal?: AbortSignal;
  /** The stream is destroyed after this long without a byte. */
  idleTimeoutMs: number;
}

export interface ApiTransport {
  readonly endpoint: ApiEndpoint;
  /** A JSON request; resolves with the parsed answer (text for the few endpoints that answer text). */
  request(method: string, path: string, options?: RequestOptions): Promise<unknown>;
  /** A streaming GET (a watch): resolves once a 2xx answer's headers arrive. */
  stream(path: string, options: StreamOptions): Promise<http.IncomingMessage>;
  /** Frees pooled connections. */
  close(): void;
}

const retryableStatus = new Set([429, 502, 503, 504]);
const READ_ATTEMPTS = 3;

export function createApiTransport(endpoint: ApiEndpoint): ApiTransport {
  const base = new URL(endpoint.server);
  const agents: { request?: http.Agent; stream?: http.Agent } = {};

  const ctx = (method: string, path: string): RequestContext => ({
    server: endpoint.server,
    context: endpoint.context,
    method,
    path,
    hints: endpoint.hints,
  });

  const agentFor = (opts: https.RequestOptions, kind: 'request' | 'stream'): http.Agent => {
    if (opts.agent) return opts.agent as http.Agent;
    let agent = agents[kind];
    if (!agent) {
      const maxSockets = kind === 'request' ? (endpoint.maxSockets ?? 16) : Number.POSITIVE_INFINITY;
      agent =
        base.protocol === 'http:'
          ? new http.Agent({ keepAlive: true, maxSockets })
          : new https.Agent({ keepAlive: true, maxSockets, ...tlsFields(opts) });
      agents[kind] = agent;
    }
    return agent;
  };

  const url = (path: string, query?: Query): URL => {
    const u = new URL(base.toString());
    u.pathname = `${u.pathname.replace(/\/+$/, '')}${path}`;
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) u.searchParams.set(k, String(v));
    return u;
  };

  /** Opens a request and resolves with the response once headers arrive. */
  const open = async (
    method: string,
    path: string,
    options: RequestOptions,
    timeoutMs: number,
    kind: 'request' | 'stream',
  ): Promise<http.IncomingMessage> => {
    const auth = await endpoint.credentials();
    const target = url(path, options.query);
    const body =
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body);
    const headers: http.OutgoingHttpHeaders = {
      ...((auth.headers ?? {}) as http.OutgoingHttpHeaders),
      Accept: 'application/json',
    };
    if (body !== undefined) {
      headers['Content-Type'] = options.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    log.debug('request', { method, url: target.toString() });
    return new Promise((resolve, reject) => {
      const req = (target.protocol === 'http:' ? http : https).request(target, {
        method,
        headers,
        agent: agentFor(auth, kind),
        auth: auth.auth,
        signal: options.signal,
      });
      req.setTimeout(timeoutMs, () =>
        req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      );
      req.on('response', resolve);
      req.on('error', (err) =>
        reject(options.signal?.aborted ? options.signal.reason : transportError(err, ctx(method, path))),
      );
      req.end(body);
    });
  };

  return {
    endpoint,

    async request(method, path, options = {}) {
      const idempotent = method === 'GET';
      const backoff = new Backoff(RETRY_BACKOFF);
      for (let attempt = 1; ; attempt++) {
        let status: number;
        let text: string;
        let retryAfter: string | undefined;
        try {
          const res = await open(method, path, options, options.timeoutMs ?? 30_000, 'request');
          status = res.statusCode ?? 0;
          retryAfter = res.headers['retry-after'] as string | undefined;
          text = await readBody(res);
        } catch (err) {
          const transient =
            err instanceof DevboxError && err.code === 'NO_CLUSTER' && /ECONNRESET|EPIPE/.test(err.message);
          if (idempotent && transient && attempt < READ_ATTEMPTS) {
            await sleep(backoff.next(), options.signal);
            continue;
          }
          throw err;
        }
        if (status >= 200 && status < 300) return parseBody(text);
        if (idempotent && retryableStatus.has(status) && attempt < READ_ATTEMPTS) {
          const asked = Number(retryAfter) * 1000;
          await sleep(asked ? Math.min(asked, RETRY_BACKOFF.maxMs) : backoff.next(), options.signal);
          continue;
        }
        throw apiError(status, text, ctx(method, path));
      }
    },

    async stream(path, options) {
      const res = await open(
        'GET',
        path,
        { query: options.query, signal: options.signal },
        options.idleTimeoutMs,
        'stream',
      );
      if ((res.statusCode ?? 0) >= 300)
        throw apiError(res.statusCode ?? 0, await readBody(res), ctx('GET', path));
      return res;
    },

    close() {
      for (const kind of ['request', 'stream'] as const) {
        agents[kind]?.destroy();
        agents[kind] = undefined;
      }
    },
  };
}

/** The TLS fields of request options, those set only: an explicit undefined would override Node's defaults. */
function tlsFields(opts: https.RequestOptions): https.AgentOptions {
  const fields: (keyof https.AgentOptions & keyof https.RequestOptions)[] = [
    'ca',
    'cert',
    'key',
    'pfx',
    'passphrase',
    'servername',
    'checkServerIdentity',
    'rejectUnauthorized',
  ];
  return Object.fromEntries(fields.filter((f) => opts[f] !== undefined).map((f) => [f, opts[f]]));
}

/** Waits between attempts of one read. */
const RETRY_BACKOFF = { initialMs: 400, maxMs: 5000 };

/** JSON for API objects; plain text for the few endpoints that answer with it (pod logs). */
function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export async function readBody(res: http.IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res as AsyncIterable<string>) text += chunk;
  return text;
}

/** An API server reached with a bearer token (the sidecar's minted one) and a CA bundle. */
export interface TokenConnection {
  /** `https://host:port` (plain `http://` is accepted for tests). */
  server: string;
  /** Current bearer token; called on every request so a rotated token file is honoured. */
  token: () => string;
  /** PEM CA bundle; undefined means the system store. */
  ca?: string;
  /** Name to verify the server certificate against, when `server` is an address rewritten from it. */
  tlsServerName?: string;
}

/** Where a token connection's parts come from: inline values or files (the sidecar's config). */
export interface TokenSource {
  /** `https://host:port` of the Kubernetes API as reachable from here. */
  apiServer: string;
  /** Bearer token, or the file holding it (re-read on every request so a refreshed token is picked up). */
  token?: string;
  tokenFile?: string;
  /** PEM bundle trusted for the API server, inline or as a file. Empty means the system store. */
  ca?: string;
  caFile?: string;
  /** Name checked against the API server's certificate when `apiServer` was rewritten (e.g. to the host gateway). */
  tlsServerName?: string;
}

/** A connection from a token source; a token file is re-read on each call. */
export function tokenConnection(opts: TokenSource): TokenConnection {
  const ca = opts.ca ?? (opts.caFile ? readFileSync(opts.caFile, 'utf8') : undefined);
  const { tokenFile } = opts;
  const token = tokenFile ? () => readFileSync(tokenFile, 'utf8').trim() : () => opts.token ?? '';
  return { server: opts.apiServer, token, ca, tlsServerName: opts.tlsServerName };
}

/** The endpoint of a token connection, verifying TLS against `tlsServerName` when the address was rewritten. */
export function tokenEndpoint(
  conn: TokenConnection,
  about: { context: string; hints?: ErrorHints; maxSockets?: number },
): ApiEndpoint {
  const host = new URL(conn.server).hostname.replace(/^\[|\]$/g, '');
  const tls = conn.tlsServerName
    ? verifyServerAs(conn.tlsServerName)
    : isIP(host)
      ? {}
      : { servername: host };
  return {
    server: conn.server,
    ...about,
    credentials: async () => ({ ca: conn.ca, ...tls, headers: { Authorization: `Bearer ${conn.token()}` } }),
  };
}
