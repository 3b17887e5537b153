/**
 * Share links, decided in the agent of the entry workload (where browsers come in).
 *
 * A link is any path on the entry with `?devbox-share=<share key>`. The agent answers it itself:
 * a redirect to the same path without the key, setting the host-only cookie
 * `devbox-session=<share key>` — so the key never reaches the app, and the browser keeps it. Every
 * later request of that browser carrying a live share's cookie gets the personal session's key as
 * `x-devbox-session` and as the `devbox-session` member of `baggage`, which the entry app passes on
 * to the services it calls when it propagates baggage; agents of those services (and this one) route
 * it to the session. The cookie itself is always taken out of what the app sees.
 *
 * A share key that is forged, expired or revoked is ignored: its link redirects without a cookie,
 * and its cookie adds nothing, so the browser sees the cluster's own app, never an error. Share keys
 * and session keys are secrets: nothing here logs them.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { SESSION_KEY_BAGGAGE, SESSION_KEY_HEADER } from '../../tunnel/route.js';
import { isShareKeyShape, SHARE_COOKIE, SHARE_QUERY, type Share } from '../../tunnel/share.js';
import { withBaggageMember } from './baggage.js';
import { setCookieLine, takeCookie } from './cookies.js';
import type { RequestRewriter } from './rewriter.js';

/**
 * The live shares of one agent, each owned by the tunnel session that sent it: a session's shares
 * end with it. Expired entries are dropped when looked up.
 */
export class ShareTable {
  private readonly shares = new Map<string, { share: Share; owner: number }>();

  constructor(readonly now: () => number = Date.now) {}

  get size(): number {
    return this.shares.size;
  }

  add(share: Share, owner = 0): void {
    this.shares.set(share.key, { share: { ...share }, owner });
  }

  /** Revokes a share (only its owner may); true when it was there. */
  remove(key: string, owner = 0): boolean {
    return this.shares.get(key)?.owner === owner && this.shares.delete(key);
  }

  /** Drops every share of a session that ended. */
  removeOwner(owner: number): void {
    for (const [key, entry] of this.shares) if (entry.owner === owner) this.shares.delete(key);
  }

  /** The share behind `key` while it lives. */
  live(key: string): Share | undefined {
    if (!isShareKeyShape(key)) return undefined;
    const entry = this.shares.get(key);
    if (entry && entry.share.expiresAt <= this.now()) {
      this.shares.delete(key);
      return undefined;
    }
    return entry?.share;
  }
}

/** A request as the agent's HTTP routers hand it over; `headers` may be changed in place. */
export interface ShareRequest {
  method: string;
  /** The request target as sent (origin form: path and query). */
  path: string;
  headers: IncomingHttpHeaders;
}

/** An answer the agent gives itself instead of forwarding the request. */
export interface ShareAnswer {
  status: number;
  headers: Record<string, string>;
}

/**
 * Applies the share table to one request: answers a share link itself, or rewrites the headers of
 * a request that carries a share's cookie (in place) and returns undefined.
 */
export function applyShares(table: ShareTable, request: ShareRequest): ShareAnswer | undefined {
  const link = parseShareLink(request.path);
  if (link) return answerLink(table, request, link);
  const cookie = request.headers.cookie;
  if (typeof cookie !== 'string' || !cookie.includes(SHARE_COOKIE)) return undefined;
  const { values, rest } = takeCookie(cookie, SHARE_COOKIE);
  if (values.length === 0) return undefined;
  if (rest === undefined) delete request.headers.cookie;
  else request.headers.cookie = rest;
  const share = values.map((v) => table.live(v)).find((s) => s !== undefined);
  if (share) pinToSession(request.headers, share.sessionKey);
  return undefined;
}

/** The agent's request rewriter: share links first, then `next` (when given). */
export function shareRewriter(table: ShareTable, next?: RequestRewriter): RequestRewriter {
  return { rewrite: (request) => applyShares(table, request) ?? next?.rewrite(request) };
}

/** Sets the personal key the way routing reads it; whatever the client sent for it is replaced. */
function pinToSession(headers: IncomingHttpHeaders, sessionKey: string): void {
  headers[SESSION_KEY_HEADER] = sessionKey;
  headers.baggage = withBaggageMember(headers.baggage, SESSION_KEY_BAGGAGE, sessionKey);
}

interface ShareLink {
  keys: string[];
  /** The target with every share parameter removed. */
  cleanPath: string;
}

/** The share keys and the clean target of a link; undefined when `path` carries none. */
export function parseShareLink(path: string): ShareLink | undefined {
  const q = path.indexOf('?');
  if (q < 0 || !path.startsWith('/') || !path.includes(SHARE_QUERY, q)) return undefined;
  const keys: string[] = [];
  const kept: string[] = [];
  for (const param of path.slice(q + 1).split('&')) {
    const eq = param.indexOf('=');
    const name = eq < 0 ? param : param.slice(0, eq);
    if (name === SHARE_QUERY) keys.push(eq < 0 ? '' : param.slice(eq + 1));
    else if (param !== '') kept.push(param);
  }
  if (keys.length === 0) return undefined;
  // `//host` or `/\host` in a Location is another site to a browser: the redirect stays on the entry.
  const onThisHost = path.slice(0, q).replace(/^[/\\]+/, '/');
  return { keys, cleanPath: onThisHost + (kept.length ? `?${kept.join('&')}` : '') };
}

function answerLink(table: ShareTable, request: ShareRequest, link: ShareLink): ShareAnswer {
  // 303 turns any other method into the GET a browser should make next.
  const status = request.method === 'GET' || request.method === 'HEAD' ? 302 : 303;
  const headers: Record<string, string> = {
    location: link.cleanPath,
    'cache-control': 'no-store',
    'content-length': '0',
  };
  const share = link.keys.map((k) => table.live(k)).find((s) => s !== undefined);
  if (share) {
    headers['set-cookie'] = setCookieLine(SHARE_COOKIE, share.key, {
      maxAgeSeconds: (share.expiresAt - table.now()) / 1000,
      secure: reachedByHttps(request.headers),
    });
  }
  return { status, headers };
}

/** The browser's scheme as a TLS-terminating Ingress or load balancer reports it. */
function reachedByHttps(headers: IncomingHttpHeaders): boolean {
  const proto = headers['x-forwarded-proto'];
  const first = (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase();
  return first === 'https';
}
