import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Service } from '@kubernetes/client-node';
import { portClashes } from '../../../src/session/up/plan.js';

const service = (name: string, clusterIP: string, ports: number[]): V1Service => ({
  metadata: { name },
  spec: { clusterIP, ports: ports.map((port) => ({ port })) },
});

describe('portClashes', () => {
  it('names each Service port the app also binds', () => {
    const clashes = portClashes({ name: 'api', ports: [{ containerPort: 8080 }, { containerPort: 9090 }] }, [
      service('api', '10.96.0.5', [80]),
      service('metrics', '10.96.0.6', [9090]),
      service('cache', '10.96.0.7', [8080, 6379]),
    ]);
    assert.equal(clashes.length, 2);
    assert.match(clashes[0]!, /service\/metrics uses port 9090/);
    assert.match(clashes[1]!, /service\/cache uses port 8080/);
  });

  it('ignores headless Services, whose pod IPs have ports of their own', () => {
    assert.deepEqual(
      portClashes({ name: 'db', ports: [{ containerPort: 5432 }] }, [service('db', 'None', [5432])]),
      [],
    );
  });
});
