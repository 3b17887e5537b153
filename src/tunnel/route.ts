/**
 * Which inbound requests a session takes. Shared by the CLI (flags → route), the sidecar (sends it
 * when it opens its tunnel session) and the agent (routes requests by it).
 *
 * - `global`: every connection on the intercept ports (no filter; one per workload).
 * - `filtered`: the HTTP requests (or HTTP/2 streams) whose headers and path match; every other
 *   request goes to the pod's own app.
 * - `mirror`: a copy of each matching request; its answer is discarded.
 *
 * On the wire the route travels in the `devbox-route` header of `POST /v1/session`, as base64url
 * JSON. The personal key is a secret: it is never logged and never written to the cluster.
 */

/** Header of `POST /v1/session` carrying {@link encodeRoute}'s output. */
export const ROUTE_HEADER = 'devbox-route';
/** The header, and the W3C `baggage` member, that carry a personal session's key. */
export const SESSION_KEY_HEADER = 'x-devbox-session';
export const SESSION_KEY_BAGGAGE = 'devbox-session';

export interface HeaderMatch {
  /** Lower case. */
  name: string;
  /** Exact value, or the source of a regular expression when `regex` is true. */
  value: string;
  regex?: boolean;
}

export interface SessionRoute {
  mode: 'global' | 'filtered' | 'mirror';
  /** All must match. */
  headers: HeaderMatch[];
  pathPrefix?: string;
  /** Matches `x-devbox-session: <key>` or `baggage: devbox-session=<key>`. */
  personalKey?: string;
}

export const GLOBAL_ROUTE: SessionRoute = { mode: 'global', headers: [] };

export function encodeRoute(route: SessionRoute): string {
  return Buffer.from(JSON.stringify(route), 'utf8').toString('base64url');
}

/** Decodes a route header; absent means a global session (sidecars older than routes). */
export function decodeRoute(header: string | undefined): SessionRoute {
  if (header === undefined || header === '') return GLOBAL_ROUTE;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
  } catch {
    throw new Error(`${ROUTE_HEADER} is not base64url JSON`);
  }
  if (typeof value !== 'object' || value === null) throw new Error(`${ROUTE_HEADER} is not an object`);
  const raw = value as Record<string, unknown>;
  if (raw.mode !== 'global' && raw.mode !== 'filtered' && raw.mode !== 'mirror') {
    throw new Error(`${ROUTE_HEADER}: mode must be global, filtered or mirror`);
  }
  const headers = Array.isArray(raw.headers) ? raw.headers : [];
  const route: SessionRoute = {
    mode: raw.mode,
    headers: headers.map((h, i) => {
      const m = h as Record<string, unknown>;
      if (typeof m?.name !== 'string' || typeof m.value !== 'string') {
        throw new Error(`${ROUTE_HEADER}: headers[${i}] needs a string name and value`);
      }
      return { name: m.name.toLowerCase(), value: m.value, ...(m.regex === true ? { regex: true } : {}) };
    }),
  };
  if (typeof raw.pathPrefix === 'string') route.pathPrefix = raw.pathPrefix;
  if (typeof raw.personalKey === 'string') route.personalKey = raw.personalKey;
  return route;
}

/** True when the route filters (a global session takes whole connections instead). */
export function isFiltered(route: SessionRoute): boolean {
  return route.mode !== 'global';
}

/** What `status` and `up` print: the filter with the personal key masked. */
export function describeRoute(route: SessionRoute): string {
  if (route.mode === 'global') return 'every request';
  const parts = route.headers.map((h) => `${h.name}: ${h.regex ? `/${h.value}/` : h.value}`);
  if (route.personalKey !== undefined) parts.push(`${SESSION_KEY_HEADER}: <this session's key>`);
  if (route.pathPrefix !== undefined) parts.push(`path ${route.pathPrefix}*`);
  const filter = parts.length ? parts.join(', ') : 'every request';
  return route.mode === 'mirror' ? `copies of ${filter}` : filter;
}
