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
import safeRegex from 'safe-regex2';
import { DevboxError, errorText } from '../util/errors.js';

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

/** A personal key carries at least this much entropy: 128 bits, as base64url (22 characters) or hex (32). */
export const PERSONAL_KEY_MIN_BITS = 128;
/** Longest regular expression accepted in a header filter. */
export const ROUTE_REGEX_MAX = 512;

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Everything wrong with `route`, one sentence each (empty when it is usable). Regular expressions
 * must compile and pass safe-regex2's star-height check: the agent runs them on every request of
 * a workload, so one that backtracks catastrophically would stall every caller.
 */
export function routeProblems(route: SessionRoute): string[] {
  const problems: string[] = [];
  if (route.mode === 'global' && (route.headers.length > 0 || route.pathPrefix || route.personalKey)) {
    problems.push('a global route takes every request and has no filter; use mode filtered or mirror');
  }
  for (const h of route.headers) {
    if (!TOKEN.test(h.name)) problems.push(`header name ${JSON.stringify(h.name)} is not an HTTP token`);
    else if (h.name.startsWith(':')) problems.push(`header name ${h.name} is a pseudo-header`);
    if (!h.regex) {
      if (/[\r\n\0]/.test(h.value))
        problems.push(`the value for header ${h.name} contains a line break or NUL`);
      continue;
    }
    problems.push(...regexProblems(h.name, h.value));
  }
  if (route.pathPrefix !== undefined && !/^\/[^\s#]*$/.test(route.pathPrefix)) {
    problems.push(
      `path prefix ${JSON.stringify(route.pathPrefix)} must start with '/' and contain no spaces or '#'`,
    );
  }
  if (route.personalKey !== undefined && keyBits(route.personalKey) < PERSONAL_KEY_MIN_BITS) {
    problems.push(
      `the personal key must carry at least ${PERSONAL_KEY_MIN_BITS} bits (22 base64url characters)`,
    );
  }
  return problems;
}

/** Throws BAD_INPUT naming every problem of {@link routeProblems}. */
export function validateRoute(route: SessionRoute): void {
  const problems = routeProblems(route);
  if (problems.length > 0) {
    throw new DevboxError('BAD_INPUT', `invalid session filter: ${problems.join('; ')}`, {
      hint: 'change --http-header / --http-path-prefix',
    });
  }
}

function regexProblems(name: string, source: string): string[] {
  if (source.length > ROUTE_REGEX_MAX) {
    return [`the regular expression for header ${name} is longer than ${ROUTE_REGEX_MAX} characters`];
  }
  try {
    new RegExp(source);
  } catch (err) {
    return [`the regular expression for header ${name} does not compile: ${errorText(err)}`];
  }
  if (!safeRegex(source)) {
    return [
      `the regular expression /${source}/ for header ${name} may backtrack catastrophically (nested repetition)`,
    ];
  }
  return [];
}

/** Bits a key can carry given the alphabet it is written in. */
function keyBits(key: string): number {
  if (/^[0-9a-f]+$/i.test(key)) return key.length * 4;
  if (/^[A-Za-z0-9_-]+$/.test(key)) return key.length * 6;
  return 0;
}

/** True when two routes filter alike (the agent refuses the second). */
export function sameFilter(a: SessionRoute, b: SessionRoute): boolean {
  if (a.mode !== b.mode || a.pathPrefix !== b.pathPrefix || a.personalKey !== b.personalKey) return false;
  const key = (h: HeaderMatch) => `${h.name}\0${h.regex ? 'r' : 'e'}\0${h.value}`;
  const left = a.headers.map(key).sort();
  const right = b.headers.map(key).sort();
  return left.length === right.length && left.every((k, i) => k === right[i]);
}

/** Header fields as a matcher reads them: lower-case names, several values joined as HTTP does. */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** A validated route compiled for matching requests. */
export class RouteMatcher {
  readonly route: SessionRoute;
  /** Header conditions (incl. the personal key) are judged before path-only filters. */
  readonly hasHeaderFilter: boolean;
  private readonly tests: ((headers: RequestHeaders) => boolean)[];

  constructor(route: SessionRoute) {
    validateRoute(route);
    this.route = route;
    this.tests = route.headers.map((h) => {
      if (!h.regex) return (headers) => headerValue(headers, h.name) === h.value;
      const re = new RegExp(h.value);
      return (headers) => {
        const v = headerValue(headers, h.name);
        return v !== undefined && re.test(v);
      };
    });
    const key = route.personalKey;
    if (key !== undefined) this.tests.push((headers) => carriesKey(headers, key));
    this.hasHeaderFilter = this.tests.length > 0;
  }

  /** `path` is the request target (path and query). */
  matches(headers: RequestHeaders, path: string): boolean {
    const prefix = this.route.pathPrefix;
    if (prefix !== undefined && !path.startsWith(prefix)) return false;
    for (const test of this.tests) if (!test(headers)) return false;
    return true;
  }
}

function headerValue(headers: RequestHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** `x-devbox-session: <key>`, or a `devbox-session=<key>` member of any `baggage` header. */
export function carriesKey(headers: RequestHeaders, key: string): boolean {
  if (headerValue(headers, SESSION_KEY_HEADER) === key) return true;
  const baggage = headerValue(headers, 'baggage');
  if (baggage === undefined || !baggage.includes(SESSION_KEY_BAGGAGE)) return false;
  for (const member of baggage.split(',')) {
    const eq = member.indexOf('=');
    if (eq < 0 || member.slice(0, eq).trim() !== SESSION_KEY_BAGGAGE) continue;
    // A member may carry properties after ';'.
    if (
      member
        .slice(eq + 1)
        .split(';', 1)[0]!
        .trim() === key
    )
      return true;
  }
  return false;
}
