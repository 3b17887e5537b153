import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ANNOTATION_SESSION,
  defaultSessionName,
  type SessionRecord,
  sessionsOf,
  withClaim,
  withSessions,
} from '../../../src/kube/index.js';
import type { Workload } from '../../../src/kube/workload.js';
import { isDevboxError } from '../../../src/util/errors.js';

const base = { host: 'laptop', startedAt: '2026-05-01T10:00:00Z', kind: 'local' as const };
const alice: SessionRecord = {
  ...base,
  user: 'alice',
  id: 'a1',
  name: 'alice',
  route: { mode: 'filtered', headers: [], personal: true },
};
const bob: SessionRecord = {
  ...base,
  user: 'bob',
  id: 'b1',
  name: 'bob',
  route: { mode: 'filtered', headers: [{ name: 'x-user', value: '^b', regex: true }], pathPrefix: '/api' },
};

function workload(raw?: string): Workload {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'api',
      namespace: 'shop',
      ...(raw !== undefined ? { annotations: { [ANNOTATION_SESSION]: raw } } : {}),
    },
    spec: { selector: {}, template: { spec: { containers: [] } } },
  } as Workload;
}

function refused(raw: string, field: RegExp): void {
  assert.throws(
    () => sessionsOf(workload(raw)),
    (err: unknown) =>
      isDevboxError(err, 'CONFLICT') &&
      /devbox\.dev\/session annotation of deployment\/api/.test((err as Error).message) &&
      field.test((err as Error).message),
    raw,
  );
}

describe('the session record of a workload', () => {
  it('lists its sessions, oldest first, as written', () => {
    assert.deepEqual(sessionsOf(workload(JSON.stringify([alice, bob]))), [alice, bob]);
    assert.deepEqual(sessionsOf(workload()), []);
  });

  it("reads an earlier version's single holder as one global session named after its user", () => {
    const legacy = { user: 'Alice.Smith', host: 'laptop', startedAt: '', id: 'x1', pid: 4 };
    assert.deepEqual(sessionsOf(workload(JSON.stringify(legacy))), [
      { ...legacy, name: 'alice-smith', route: { mode: 'global', headers: [] }, kind: 'local' },
    ]);
  });

  it('refuses a tampered list, naming the field', () => {
    refused(JSON.stringify([alice, { ...bob, name: 'Bob!' }]), /\[1\]\.name must be/);
    refused(
      JSON.stringify([alice, { ...bob, route: { ...bob.route, headers: [{ name: 'a b', value: '' }] } }]),
      /\[1\]\.route\.headers\[0\]\.name/,
    );
    refused(
      JSON.stringify([{ ...alice, route: { ...alice.route, personalKey: 'k' } }]),
      /\[0\]\.route\.personalKey must not be recorded/,
    );
    refused(
      JSON.stringify([{ ...alice, route: { mode: 'global', headers: [], pathPrefix: '/x' } }]),
      /a global route has no filter/,
    );
    refused(JSON.stringify([alice, { ...bob, name: 'alice' }]), /\[1\]\.name "alice" appears twice/);
    refused(JSON.stringify([alice, { ...bob, kind: 'daemon' }]), /\[1\]\.kind must be one of local, share/);
    refused(
      JSON.stringify([{ ...alice, route: { ...alice.route, pathPrefix: 'api' } }]),
      /pathPrefix must be a path/,
    );
    refused('7', /expected a list of sessions/);
  });

  it('a claim adds the session, replacing only the leftovers named', () => {
    const claimed = withClaim(workload(JSON.stringify([alice])), bob);
    assert.deepEqual(sessionsOf(claimed), [alice, bob]);
    const replaced = withClaim(workload(JSON.stringify([alice])), { ...bob, name: 'alice' }, ['a1']);
    assert.deepEqual(sessionsOf(replaced), [{ ...bob, name: 'alice' }]);
  });

  it('drops the annotation with the last session', () => {
    assert.equal(withSessions(workload(JSON.stringify([alice])), []).metadata?.annotations, undefined);
  });

  it('derives a default name from any login', () => {
    assert.equal(defaultSessionName('DOMAIN\\Jane_Doe'), 'domain-jane-doe');
    assert.equal(defaultSessionName('___'), 'dev');
    assert.equal(defaultSessionName('x'.repeat(40)).length, 32);
  });
});
