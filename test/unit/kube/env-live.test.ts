import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  labelSelectorString,
  resolvePodEnv,
  resolveWorkloadEnv,
  runningPods,
} from '../../../src/kube/env/live.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { FakeApi, json, status } from './fake-api.js';
import { deployment, service } from './fixtures.js';

let api: FakeApi;

const podSpec = {
  nodeName: 'node-1',
  enableServiceLinks: true,
  containers: [
    {
      name: 'app',
      env: [
        { name: 'POD', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
        { name: 'LEVEL', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'level' } } },
        { name: 'CPU', valueFrom: { resourceFieldRef: { resource: 'limits.cpu', divisor: '1m' } } },
      ],
      envFrom: [{ configMapRef: { name: 'cfg' } }],
    },
  ],
};

function pod(name: string, phase: string, created: string, extra: Record<string, unknown> = {}) {
  return {
    metadata: { name, namespace: 'shop', creationTimestamp: created, labels: { app: 'api' }, ...extra },
    spec: podSpec,
    status: { phase, podIP: '10.1.1.1' },
  };
}

before(async () => {
  api = new FakeApi();
  await api.start();
  api
    .on('GET', '/api/v1/namespaces/shop/pods/api-1', (_req, res) =>
      json(res, 200, pod('api-1', 'Running', '2026-01-01T00:00:00Z')),
    )
    .on('GET', '/api/v1/namespaces/shop/pods', (req, res) => {
      assert.equal(req.query.get('labelSelector'), 'app=api');
      json(res, 200, {
        metadata: { resourceVersion: '1' },
        items: [
          pod('old', 'Running', '2026-01-01T00:00:00Z'),
          pod('new', 'Running', '2026-01-02T00:00:00Z'),
          pod('pending', 'Pending', '2026-01-03T00:00:00Z'),
          pod('leaving', 'Running', '2026-01-04T00:00:00Z', { deletionTimestamp: '2026-01-05T00:00:00Z' }),
        ],
      });
    })
    .on('GET', '/api/v1/nodes/node-1', (_req, res) =>
      json(res, 403, status(403, 'Forbidden', 'nodes "node-1" is forbidden')),
    )
    .on('GET', '/api/v1/namespaces/shop/configmaps/cfg', (_req, res) =>
      json(res, 200, { metadata: { name: 'cfg' }, data: { level: 'debug', '1bad': 'x' } }),
    )
    .on('GET', '/api/v1/namespaces/shop/services', (_req, res) =>
      json(res, 200, {
        metadata: { resourceVersion: '1' },
        items: [service('shop', 'db', '10.96.1.1', [{ port: 5432 }])],
      }),
    )
    .on('GET', '/api/v1/namespaces/default/services/kubernetes', (_req, res) =>
      json(res, 403, status(403, 'Forbidden', 'forbidden')),
    );
});
after(() => api.stop());

describe('env against a cluster', () => {
  it('resolves a running pod through the API, tolerating forbidden Nodes and master Service', async () => {
    const client = api.client();
    try {
      const { vars, warnings } = await resolvePodEnv(client, 'shop', 'api-1', 'app');
      const env = Object.fromEntries(vars.map((v) => [v.name, v.value]));
      assert.equal(env.POD, 'api-1');
      assert.equal(env.LEVEL, 'debug');
      assert.equal(env['1bad'], 'x');
      assert.equal(env.DB_SERVICE_HOST, '10.96.1.1');
      assert.equal(env.CPU, undefined);
      assert.equal(warnings.length, 2);
      assert.match(warnings.join('\n'), /KUBERNETES_SERVICE_\*/);
      assert.match(warnings.join('\n'), /env CPU: container app sets no cpu limit/);
      await assert.rejects(resolvePodEnv(client, 'shop', 'gone', 'app'), (err: unknown) =>
        isDevboxError(err, 'NOT_FOUND'),
      );
    } finally {
      client.close();
    }
  });

  it('uses the newest running pod of a workload', async () => {
    const client = api.client();
    try {
      const w = deployment('api', { app: 'api' }, podSpec.containers);
      assert.deepEqual(
        (await runningPods(client, w)).map((p) => p.metadata?.name),
        ['new', 'old'],
      );
      const { vars } = await resolveWorkloadEnv(client, w, 'app');
      assert.equal(vars.find((v) => v.name === 'POD')?.value, 'new');
    } finally {
      client.close();
    }
  });

  it("takes the master Service from a running pod's env when the user may not read it", async () => {
    const client = api.client();
    try {
      const w = deployment('api', { app: 'api' }, podSpec.containers);
      const { vars, warnings } = await resolveWorkloadEnv(client, w, 'app', {
        kubernetesService: async () => ({ host: '10.96.0.1', port: 443 }),
      });
      const env = Object.fromEntries(vars.map((v) => [v.name, v.value]));
      assert.equal(env.KUBERNETES_SERVICE_HOST, '10.96.0.1');
      assert.equal(env.KUBERNETES_SERVICE_PORT, '443');
      assert.equal(env.KUBERNETES_SERVICE_PORT_HTTPS, '443');
      assert.equal(env.KUBERNETES_PORT_443_TCP, 'tcp://10.96.0.1:443');
      assert.doesNotMatch(warnings.join('\n'), /KUBERNETES_SERVICE_\*/);
      const unknown = await resolveWorkloadEnv(client, w, 'app', {
        kubernetesService: async () => undefined,
      });
      assert.match(unknown.warnings.join('\n'), /KUBERNETES_SERVICE_\*/);
    } finally {
      client.close();
    }
  });

  it('writes label selectors with expressions', () => {
    assert.equal(
      labelSelectorString({
        matchLabels: { app: 'api' },
        matchExpressions: [
          { key: 'tier', operator: 'In', values: ['a', 'b'] },
          { key: 'canary', operator: 'DoesNotExist' },
          { key: 'zone', operator: 'Exists' },
          { key: 'env', operator: 'NotIn', values: ['dev'] },
        ],
      }),
      'app=api,tier in (a,b),!canary,zone,env notin (dev)',
    );
  });
});
