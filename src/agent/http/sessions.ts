import type { AgentSession } from '../tunnel-server.js';

/** What the HTTP routers need to know about the tunnel's sessions. */
export interface SessionDirectory {
  /** Live, non-suspect sessions that take inbound traffic, oldest first. */
  availableSessions(): AgentSession[];
  isAvailable(session: AgentSession): boolean;
}

export interface RouteChoice {
  /** The session that answers the request; undefined: the pod's app. */
  session: AgentSession | undefined;
  /** Mirror sessions that get a copy. */
  mirrors: AgentSession[];
}

/**
 * Picks who answers a request: the first filtered session whose header filter (or personal key)
 * matches, else the first whose path-only filter matches, else a global session if one is open,
 * else the pod's app. Every matching mirror session gets a copy besides.
 */
export function chooseRoute(
  sessions: readonly AgentSession[],
  headers: Record<string, string | string[] | undefined>,
  path: string,
): RouteChoice {
  let byHeader: AgentSession | undefined;
  let byPath: AgentSession | undefined;
  let global: AgentSession | undefined;
  const mirrors: AgentSession[] = [];
  for (const s of sessions) {
    const matcher = s.matcher;
    if (!matcher) {
      global = s; // the newest global session, as on the byte path
      continue;
    }
    if (s.route.mode === 'mirror') {
      if (matcher.matches(headers, path)) mirrors.push(s);
      continue;
    }
    if (matcher.hasHeaderFilter) {
      if (!byHeader && matcher.matches(headers, path)) byHeader = s;
    } else if (!byPath && matcher.matches(headers, path)) byPath = s;
  }
  return { session: byHeader ?? byPath ?? global, mirrors };
}
