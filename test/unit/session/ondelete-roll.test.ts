import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import type { Workload } from '../../../src/kube/workload.js';
import { hasAgent, podsToReplace } from '../../../src/session/ondelete-roll.js';
import { rolloutComplete } from '../../../src/session/rollout.js';

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

  it('counts the rollout done once every pod is updated and ready, though OnDelete never moves currentRevision', () => {
    const status = {
      observedGeneration: 2,
      replicas: 2,
      readyReplicas: 2,
      updatedReplicas: 2,
      currentRevision: 'db-1',
      updateRevision: 'db-2',
    };
    const onDelete = {
      kind: 'StatefulSet',
      metadata: { name: 'db', generation: 2 },
      spec: { replicas: 2, updateStrategy: { type: 'OnDelete' } },
      status,
    } as unknown as Workload;
    assert.equal(rolloutComplete(onDelete), true);
    const rolling = {
      ...onDelete,
      spec: { replicas: 2, updateStrategy: { type: 'RollingUpdate' } },
    } as Workload;
    assert.equal(rolloutComplete(rolling), false);
  });
});
