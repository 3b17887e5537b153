import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RecordedRoute, SessionRecord } from '../../../src/kube/index.js';
import { admitSession, type Candidate } from '../../../src/session/admission.js';
import { isDevboxError } from '../../../src/util/errors.js';

const workload = { label: 'deployment/api', name: 'api', namespace: 'shop' };
const GLOBAL: RecordedRoute = { mode: 'global', headers: [] };
const PERSONAL: RecordedRoute = { mode: 'filtered', headers: [], personal: true };
const BY_USER: RecordedRoute = { mode: 'filtered', headers: [{ name: 'x-user', value: 'bob' }] };
const MIRROR: RecordedRoute = { mode: 'mirror', headers: [] };

function session(name: string, route: RecordedRoute, extra: Partial<SessionRecord> = {}): SessionRecord {
  return {
    user: name,
    host: 'desk',
    startedAt: '2026-05-01T10:00:00Z',
    id: `id-${name}`,
    name,
    route,
    kind: 'local',
    ...extra,
  };
}
const alice = (route: RecordedRoute): Candidate => ({ name: 'alice', user: 'alice', host: 'laptop', route });
const never = () => false;

function refused(run: () => unknown, pattern: RegExp): void {
  assert.throws(
    run,
    (err: unknown) => isDevboxError(err, 'CONFLICT') && pattern.test((err as Error).message),
  );
}

describe('which sessions share a workload', () => {
  it('lets filtered sessions with different filters share it', () => {
    assert.deepEqual(
      admitSession(workload, [session('bob', BY_USER), session('carol', PERSONAL)], alice(PERSONAL), never),
      {
        replaces: [],
      },
    );
  });

  it('never lets a global session and filtered ones share it, either way round', () => {
    refused(
      () => admitSession(workload, [session('bob', GLOBAL)], alice(PERSONAL), never),
      /bob@desk .*a global session/,
    );
    refused(
      () => admitSession(workload, [session('bob', BY_USER)], alice(GLOBAL), never),
      /filtered session of bob@desk .*\(x-user: bob\)/,
    );
    refused(() => admitSession(workload, [session('bob', GLOBAL)], alice(GLOBAL), never), /bob@desk/);
  });

  it('refuses an identical filter, naming its holder', () => {
    refused(
      () => admitSession(workload, [session('bob', BY_USER)], alice(BY_USER), never),
      /same requests \(x-user: bob\) to bob@desk/,
    );
  });

  it('lets mirrors share it with anything', () => {
    for (const route of [GLOBAL, PERSONAL, MIRROR])
      assert.deepEqual(admitSession(workload, [session('bob', route)], alice(MIRROR), never).replaces, []);
    assert.deepEqual(admitSession(workload, [session('bob', MIRROR)], alice(GLOBAL), never).replaces, []);
  });

  it('keeps names unique, but replaces a session of the same name this user left behind here', () => {
    refused(
      () => admitSession(workload, [session('alice', PERSONAL, { user: 'mallory' })], alice(MIRROR), never),
      /session named alice/,
    );
    const leftover = session('alice', GLOBAL, { user: 'alice', host: 'laptop' });
    refused(() => admitSession(workload, [leftover], alice(PERSONAL), never), /session named alice/);
    assert.deepEqual(admitSession(workload, [leftover], alice(PERSONAL), () => true).replaces, ['id-alice']);
  });

  it('refuses to join while the last session restores the workload', () => {
    refused(
      () => admitSession(workload, [session('bob', PERSONAL, { ending: true })], alice(MIRROR), never),
      /being restored/,
    );
  });
});
