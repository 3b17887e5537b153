import {
  decodeRoute,
  describeRoute,
  RouteMatcher,
  routeProblems,
  type SessionRoute,
  sameFilter,
} from '../tunnel/route.js';
import { errorText } from '../util/errors.js';

/** What the agent keeps of a session's route. */
export interface RoutedSessionInfo {
  readonly route: SessionRoute;
  /** Undefined for a global session. */
  readonly matcher: RouteMatcher | undefined;
  readonly sessionId: string | undefined;
}

export type RouteAdmission =
  | { ok: true; route: SessionRoute; matcher: RouteMatcher | undefined }
  | { ok: false; status: 400 | 409; code: string; message: string };

/** Session ids are printed by `status` and used as stats keys. */
const SESSION_ID = /^[A-Za-z0-9._-]{1,128}$/;

/**
 * Judges the route a session asks for against the sessions already open: one global session at
 * most, and no two sessions with the same filter (the second could never see a request).
 * Filtered and mirror sessions may otherwise coexist with each other and with a global one.
 * A session reconnecting under its own id is let in beside its old connection, which the agent
 * may not know to be dead yet (the newest is routed to); so are global sessions without ids,
 * from sidecars that predate routes.
 */
export function admitRoute(
  header: string | undefined,
  sessionId: string | undefined,
  open: readonly RoutedSessionInfo[],
): RouteAdmission {
  let route: SessionRoute;
  try {
    route = decodeRoute(header);
  } catch (err) {
    return { ok: false, status: 400, code: 'EINVAL', message: errorText(err) };
  }
  const problems = routeProblems(route);
  if (problems.length > 0) {
    return {
      ok: false,
      status: 400,
      code: 'EINVAL',
      message: `invalid session filter: ${problems.join('; ')}`,
    };
  }
  const twin = open.find(
    (s) =>
      sameFilter(s.route, route) &&
      s.sessionId !== sessionId &&
      !(route.mode === 'global' && s.sessionId === undefined && sessionId === undefined),
  );
  if (twin) {
    const message =
      route.mode === 'global'
        ? 'another session already takes every request of this workload'
        : `another session already has this filter (${describeRoute(route)})`;
    return { ok: false, status: 409, code: 'EEXIST', message };
  }
  return { ok: true, route, matcher: route.mode === 'global' ? undefined : new RouteMatcher(route) };
}

/** The id a sidecar names its session by, or undefined when absent or malformed. */
export function sessionIdOf(header: string | undefined): string | undefined {
  return header !== undefined && SESSION_ID.test(header) ? header : undefined;
}
