/**
 * Which sessions may share a workload. The agent routes each request to the session whose
 * filter matches, so every filtered request must have one owner: a global session takes every
 * request and shares with mirrors only; two sessions with the same filter could not tell their
 * requests apart. Mirrors only copy, so they share with anything. Names are unique per workload
 * (`down --name` and the local container names use them).
 */

import { describeHolder, type RecordedRoute, type SessionRecord } from '../kube/index.js';
import { describeRoute } from '../tunnel/route.js';
import { DevboxError } from '../util/errors.js';
import { asDescribable, sameRecordedFilter } from './route-flags.js';

/** Who asks to join. */
export interface Candidate {
  name: string;
  user: string;
  host: string;
  route: RecordedRoute;
}

export interface Admission {
  /** Sessions the candidate replaces: its own name, left by a crash of the same user on this machine. */
  replaces: string[];
}

/**
 * Admits `candidate` to a workload that records `sessions`, or throws CONFLICT naming the
 * session in the way and what to change. `isLeftover` tells a session of the same name that no
 * longer runs (its `up` crashed) from one that does.
 */
export function admitSession(
  workload: { label: string; name: string; namespace: string },
  sessions: readonly SessionRecord[],
  candidate: Candidate,
  isLeftover: (s: SessionRecord) => boolean,
): Admission {
  const replaces: string[] = [];
  const { label, name, namespace } = workload;
  for (const s of sessions) {
    if (s.ending)
      throw new DevboxError(
        'CONFLICT',
        `${label} is being restored as its last session ends (${describeHolder(s)})`,
        {
          hint: 'try again in a moment; if it stays so, `devbox clean` restores it',
        },
      );
    if (s.name === candidate.name) {
      if (s.user === candidate.user && s.host === candidate.host && isLeftover(s)) {
        replaces.push(s.id);
        continue;
      }
      throw new DevboxError(
        'CONFLICT',
        `${label} already has a session named ${s.name}: ${describeHolder(s)}, ${describe(s.route)}`,
        {
          hint: `choose another name with --name, or end that one with \`devbox down ${name} -n ${namespace} --name ${s.name}\` where it runs`,
        },
      );
    }
    if (candidate.route.mode === 'mirror' || s.route.mode === 'mirror') continue;
    if (s.route.mode === 'global')
      throw new DevboxError(
        'CONFLICT',
        `${label} is in use by ${describeHolder(s)}, a global session: it takes every request, so no filtered session can share it`,
        { hint: 'ask them to end it (or to start a filtered one), or mirror its traffic with --mirror' },
      );
    if (candidate.route.mode === 'global')
      throw new DevboxError(
        'CONFLICT',
        `${label} has a filtered session of ${describeHolder(s)} (${describe(s.route)}): a global session would take its requests`,
        {
          hint: 'filter the requests you want (--personal, --http-header, --http-path-prefix), or add --mirror',
        },
      );
    if (sameRecordedFilter(s.route, candidate.route))
      throw new DevboxError(
        'CONFLICT',
        `${label} already routes the same requests (${describe(s.route)}) to ${describeHolder(s)}`,
        { hint: 'choose another filter, or --personal for a key of your own' },
      );
  }
  return { replaces };
}

function describe(route: RecordedRoute): string {
  return route.mode === 'global' ? 'every request' : describeRoute(asDescribable(route));
}
