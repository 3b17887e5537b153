import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import type { Workload } from '../../../src/kube/workload.js';
import { hasAgent, podsToReplace } from '../../../src/session/ondelete-roll.js';

const sts = { kind: 'StatefulSet', metadata: { name: 'db', uid: 'sts-uid' } } as Workload;

function pod(name: string, owner: string | undefined, agent: boolean): V1Pod {
  return {
    metadata: {
      name,
      ...(owner
        ? {
            ownerReferences: [
              { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'x', uid: owner, controller: true },
            ],
          }
        : {}),
    },
    spec: { containers: [{ name: 'db' }, ...(agent ? [{ name: 'devbox-agent' }] : [])] },
  };
}

describe('rolling a StatefulSet that uses OnDelete', () => {
  it('replaces only its own pods, highest ordinal first (regression: every matching pod went at once)', () => {
    const pods = [
      pod('db-0', 'sts-uid', false),
      pod('db-2', 'sts-uid', false),
      pod('db-1', 'sts-uid', true),
      pod('db-10', 'sts-uid', false),
      pod('impostor-0', 'other-uid', false),
      pod('loose', undefined, false),
    ];
    const names = (list: V1Pod[]) => list.map((p) => p.metadata!.name);
    assert.deepEqual(names(podsToReplace(pods, sts, (p) => !hasAgent(p))), ['db-10', 'db-2', 'db-0']);
    assert.deepEqual(names(podsToReplace(pods, sts, hasAgent)), ['db-1']);
  });
});
