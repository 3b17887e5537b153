import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Service } from '@kubernetes/client-node';
import {
  ANNOTATION_ORIGINAL,
  ANNOTATION_SESSION,
  planIntercept,
  restoreService,
  restoreWorkload,
  sessionOf,
} from '../../../src/kube/intercept.js';
import type { Workload } from '../../../src/kube/workload.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { service } from './fixtures.js';

function deployment(): Workload {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'api', namespace: 'shop', resourceVersion: '7' },
    spec: {
      selector: { matchLabels: { app: 'api' } },
      template: {
        metadata: { labels: { app: 'api' } },
        spec: {
          containers: [
            {
              name: 'app',
              image: 'registry.local/api:1',
              ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }],
              readinessProbe: { httpGet: { path: '/', port: 'http' } },
            },
          ],
        },
      },
    },
  } as Workload;
}

const svc = (): V1Service =>
  service('shop', 'api', '10.96.0.9', [{ port: 80, targetPort: 8080 }], { app: 'api' });

/** The workload and Service as `up` writes them. */
function intercepted() {
  const plan = planIntercept({
    workload: deployment(),
    services: [svc()],
    container: 'app',
    agent: { image: 'node:22-slim', bundleConfigMap: 'b', bundleSha256: 'ab'.repeat(32), tokenSecret: 't' },
    holder: { user: 'alice', host: 'laptop', startedAt: '2026-05-01T10:00:00Z', id: '3f2a' },
  });
  return { workload: plan.workload, service: plan.services[0]! };
}

function editRecord(w: Workload, edit: (record: Record<string, any>) => void): Workload {
  const record = JSON.parse(w.metadata!.annotations![ANNOTATION_ORIGINAL]!);
  edit(record);
  w.metadata!.annotations![ANNOTATION_ORIGINAL] = JSON.stringify(record);
  return w;
}

function refused(run: () => unknown, field: RegExp): void {
  assert.throws(run, (err) => {
    assert.ok(isDevboxError(err, 'CONFLICT'), String(err));
    assert.match(err.message, field);
    assert.match(err.message, /deployment\/api|service\/api/);
    return true;
  });
}

describe('restore records read back from the cluster', () => {
  it('accepts what up writes, and restores it exactly', () => {
    const { workload, service: s } = intercepted();
    const restored = restoreWorkload(workload)!;
    assert.equal(restored.exact, true);
    assert.deepEqual(restored.object.spec, deployment().spec);
    assert.equal(restoreService(s)!.exact, true);
  });

  it('refuses a record naming the app container as the agent (restore would drop the app)', () => {
    const w = editRecord(intercepted().workload, (r) => {
      r.agent.container = 'app';
    });
    refused(() => restoreWorkload(w), /agent\.container/);
  });

  it('refuses a record adding volumes of the app to what devbox removes', () => {
    const w = editRecord(intercepted().workload, (r) => {
      r.agent.volumes.push('data');
    });
    refused(() => restoreWorkload(w), /agent\.volumes/);
  });

  it('refuses app.fields that would write an image during restore', () => {
    const w = intercepted().workload;
    const current = w.spec!.template.spec!.containers[0]!.image;
    const tampered = editRecord(w, (r) => {
      r.app.fields.image = current;
      r.spec.template.spec.containers[0].image = 'evil.example/miner:1';
    });
    refused(() => restoreWorkload(tampered), /app\.fields\.image/);
  });

  it('refuses app.fields that differ from the original in more than a port name', () => {
    const w = editRecord(intercepted().workload, (r) => {
      r.spec.template.spec.containers[0].ports[0].hostPort = 80;
    });
    refused(() => restoreWorkload(w), /app\.fields\.ports differs from spec at \[0\]\.hostPort/);
  });

  it('refuses a record whose spec already holds the agent', () => {
    const w = editRecord(intercepted().workload, (r) => {
      r.spec.template.spec.containers.push({ name: 'devbox-agent', image: 'x' });
    });
    refused(() => restoreWorkload(w), /without devbox-agent/);
  });

  it('refuses a session record that is not a holder ("null" crashed up)', () => {
    for (const raw of ['null', '"3f2a"', '{"user":"a","host":"b","startedAt":"","id":7}', '{not json']) {
      const w = intercepted().workload;
      w.metadata!.annotations![ANNOTATION_SESSION] = raw;
      refused(() => sessionOf(w), /devbox\.dev\/session/);
    }
  });

  it('refuses a Service record with a port out of range or a workload of another shape', () => {
    const s = intercepted().service;
    const record = JSON.parse(s.metadata!.annotations![ANNOTATION_ORIGINAL]!);
    s.metadata!.annotations![ANNOTATION_ORIGINAL] = JSON.stringify({ ...record, workload: 'pod/x' });
    refused(() => restoreService(s), /workload must be/);
    s.metadata!.annotations![ANNOTATION_ORIGINAL] = JSON.stringify({
      ...record,
      ports: [{ port: 70000, protocol: 'TCP', targetPort: 'http' }],
    });
    refused(() => restoreService(s), /ports must list/);
  });

  it('refuses a record that leaves the agent bundle volume out of what devbox removes', () => {
    const w = editRecord(intercepted().workload, (r) => {
      r.agent.volumes = [];
    });
    refused(() => restoreWorkload(w), /agent\.volumes/);
  });

  it('refuses a Service record whose original ports are not ports (a null entry crashed restore)', () => {
    for (const entry of [
      null,
      { port: 80, targetPort: null },
      { port: 80, targetPort: { x: 1 } },
      { port: 'x' },
    ]) {
      const s = intercepted().service;
      const record = JSON.parse(s.metadata!.annotations![ANNOTATION_ORIGINAL]!);
      record.spec.ports = [entry];
      s.metadata!.annotations![ANNOTATION_ORIGINAL] = JSON.stringify(record);
      refused(() => restoreService(s), /spec\.ports/);
    }
  });
});
