/**
 * `up`'s filter flags as a session route: `--http-header NAME=VALUE` (VALUE exact, or `/regex/`),
 * `--http-path-prefix`, `--personal` (a fresh random key) and `--mirror`. Every problem is
 * reported at once, naming the flag, before anything changes.
 */
import { randomBytes } from 'node:crypto';
import type { RecordedRoute } from '../kube/index.js';
import { type HeaderMatch, routeProblems, SESSION_KEY_HEADER, type SessionRoute } from '../tunnel/route.js';
import { DevboxError } from '../util/errors.js';

export interface RouteFlags {
  headers: readonly string[];
  pathPrefix?: string | undefined;
  personal: boolean;
  /** With `personal`: the key to use (one `up` of several workloads gives each the same), else a fresh one. */
  personalKey?: string;
  mirror: boolean;
}

/** An HTTP header name (RFC 9110 token). */
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$/;
/** Headers a filter may not use: the key's own header is `--personal`'s; the rest say where a request goes, not who sent it. */
const RESERVED = new Set([SESSION_KEY_HEADER, 'host', 'content-length', 'transfer-encoding', 'connection']);

/** 128 bits: guessing another developer's key is out of reach. */
const KEY_BYTES = 16;

/** The route the flags ask for (a global route with none); BAD_INPUT naming every flag to change. */
export function routeFromFlags(flags: RouteFlags): SessionRoute {
  const problems: string[] = [];
  const headers = flags.headers.flatMap((text) => {
    const parsed = parseHeaderFlag(text);
    if (typeof parsed === 'string') {
      problems.push(parsed);
      return [];
    }
    return [parsed];
  });
  const prefix = flags.pathPrefix;
  if (prefix !== undefined && !/^\/[^\s?#]{0,1023}$/.test(prefix))
    problems.push(
      `--http-path-prefix ${JSON.stringify(prefix)}: give a path that starts with / (no spaces, ? or #), e.g. /api/`,
    );
  // What the agent would refuse (a regular expression that may backtrack catastrophically) is refused here, before anything changes.
  if (problems.length === 0)
    for (const problem of routeProblems({ mode: 'filtered', headers }))
      problems.push(`--http-header: ${problem}`);
  if (problems.length) throw new DevboxError('BAD_INPUT', problems.join('\n'));
  const filtered = headers.length > 0 || prefix !== undefined || flags.personal;
  if (!filtered && !flags.mirror) return { mode: 'global', headers: [] };
  const route: SessionRoute = { mode: flags.mirror ? 'mirror' : 'filtered', headers };
  if (prefix !== undefined) route.pathPrefix = prefix;
  if (flags.personal) route.personalKey = flags.personalKey ?? newPersonalKey();
  return route;
}

/** One `--http-header` value, or what is wrong with it. */
function parseHeaderFlag(text: string): HeaderMatch | string {
  const flag = `--http-header ${JSON.stringify(text)}`;
  const eq = text.indexOf('=');
  if (eq <= 0) return `${flag}: write NAME=VALUE (VALUE exact, or /regex/), e.g. x-user=alice`;
  const name = text.slice(0, eq).trim();
  const value = text.slice(eq + 1);
  if (!HEADER_NAME.test(name)) return `${flag}: "${name}" is not an HTTP header name`;
  const lower = name.toLowerCase();
  if (lower === SESSION_KEY_HEADER) return `${flag}: use --personal for ${SESSION_KEY_HEADER}`;
  if (RESERVED.has(lower)) return `${flag}: ${lower} cannot be filtered on; choose another header`;
  if (/[\r\n\0]/.test(value) || value.length > 1024)
    return `${flag}: the value must be one line of at most 1024 characters`;
  if (value.length >= 2 && value.startsWith('/') && value.endsWith('/')) {
    const source = value.slice(1, -1);
    try {
      new RegExp(source);
    } catch (err) {
      return `${flag}: /${source}/ is not a regular expression (${(err as Error).message})`;
    }
    return { name: lower, value: source, regex: true };
  }
  return { name: lower, value };
}

/** A fresh personal key. */
export function newPersonalKey(): string {
  return randomBytes(KEY_BYTES).toString('base64url');
}

/** The route as the workload records it: whether it has a personal key, never the key. */
export function recordedRoute(route: SessionRoute): RecordedRoute {
  const { personalKey, ...rest } = route;
  return {
    ...rest,
    headers: rest.headers.map((h) => ({ ...h })),
    ...(personalKey !== undefined ? { personal: true } : {}),
  };
}

/** A recorded route in the shape `describeRoute` takes (the key masked anyway). */
export function asDescribable(route: RecordedRoute): SessionRoute {
  const { personal, ...rest } = route;
  return personal ? { ...rest, personalKey: '' } : rest;
}

/** True when both routes take the same requests, so neither could tell its own apart. */
export function sameRecordedFilter(a: RecordedRoute, b: RecordedRoute): boolean {
  const key = (r: RecordedRoute) =>
    JSON.stringify([
      r.mode === 'mirror',
      [...r.headers].map((h) => [h.name, h.value, Boolean(h.regex)]).sort(),
      r.pathPrefix ?? null,
    ]);
  // Every personal route has a key of its own.
  return !a.personal && !b.personal && key(a) === key(b);
}

/**
 * A `curl` line that a pod of the cluster can paste to reach this session: its key and the
 * exact headers (a regular expression's match is left to fill in), on its path.
 */
export function curlLine(route: SessionRoute, url: string): string {
  const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
  const args = route.headers.map((h) =>
    h.regex ? `-H ${quote(`${h.name}: <matching /${h.value}/>`)}` : `-H ${quote(`${h.name}: ${h.value}`)}`,
  );
  if (route.personalKey !== undefined)
    args.unshift(`-H ${quote(`${SESSION_KEY_HEADER}: ${route.personalKey}`)}`);
  const path = route.pathPrefix ?? '/';
  return ['curl', ...args, quote(`${url}${path}`)].join(' ');
}
