/**
 * `up`'s filter flags come from a shell: any text. Each is refused with BAD_INPUT or becomes
 * a route that the agent accepts, that the workload's record reads back as written, and whose
 * key (if any) is not in the record.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSessionRecords } from '../../../src/kube/restore-record.js';
import { recordedRoute, routeFromFlags } from '../../../src/session/route-flags.js';
import { routeProblems } from '../../../src/tunnel/route.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { fuzz, onlyTypedErrors, type Rng } from '../../support/fuzz.js';

const PIECES = [
  'x-user',
  'X-Tenant',
  '=',
  '/',
  '^',
  '$',
  '(a+)+',
  '.*',
  '[',
  ' ',
  '\n',
  ':',
  'é',
  '%',
  '?',
  '#',
  'a',
];
const text = (rng: Rng) => Array.from({ length: rng.int(6) }, () => rng.pick(PIECES)).join('');

describe('fuzzed filter flags', () => {
  it('are refused with BAD_INPUT or give a route the agent and the record accept', () => {
    fuzz('filter flags', { rounds: 1500 }, (rng) => {
      const flags = {
        headers: Array.from({ length: rng.int(3) }, () => text(rng)),
        ...(rng.chance(2) ? { pathPrefix: text(rng) } : {}),
        personal: rng.chance(2),
        mirror: rng.chance(3),
      };
      const route = onlyTypedErrors(
        (err) => isDevboxError(err, 'BAD_INPUT'),
        () => routeFromFlags(flags),
        flags,
      );
      if (!route) return;
      assert.deepEqual(routeProblems(route), [], JSON.stringify(flags));
      const entry = {
        user: 'u',
        host: 'h',
        startedAt: '',
        id: 'id1',
        name: 'u',
        kind: 'local',
        route: recordedRoute(route),
      };
      const [read] = parseSessionRecords(JSON.stringify([entry]), 'deployment/api');
      assert.deepEqual(read?.route, entry.route, JSON.stringify(flags));
      if (route.personalKey) assert.ok(!JSON.stringify(entry).includes(route.personalKey));
    });
  });
});
