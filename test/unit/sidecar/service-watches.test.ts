import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createApiTransport, tokenEndpoint } from '../../../src/kube/api/index.js';
import { paths } from '../../../src/sidecar/resources.js';
import { answeredNamespace, ServiceWatches } from '../../../src/sidecar/service-watches.js';
import { buildAReply, buildQuery } from '../../support/dns.js';
import { eventually, FakeKube } from './fakes.js';

const answer = (name: string) => buildAReply(buildQuery(7, name), ['10.96.0.9']);

describe('the namespace a DNS answer is about', () => {
  it('is the label before .svc for Services and their pods, whatever the cluster domain', () => {
    assert.equal(answeredNamespace(answer('cache.billing.svc.cluster.local'), 'shop'), 'billing');
    assert.equal(answeredNamespace(answer('db-0.db.billing.svc.cluster.local.'), 'shop'), 'billing');
    assert.equal(answeredNamespace(answer('Cache.Billing.svc.corp.example'), 'shop'), 'billing');
  });

  it('is nothing for the own namespace, for other names, and for answers without records', () => {
    assert.equal(answeredNamespace(answer('inventory.shop.svc.cluster.local'), 'shop'), undefined);
    assert.equal(answeredNamespace(answer('example.com'), 'shop'), undefined);
    assert.equal(answeredNamespace(answer('svc.cluster.local'), 'shop'), undefined);
    assert.equal(answeredNamespace(answer('x.svc.cluster.local'), 'shop'), undefined);
    const nx = buildAReply(buildQuery(8, 'cache.billing.svc.cluster.local'), [], 5, 'NXDOMAIN');
    assert.equal(answeredNamespace(nx, 'shop'), undefined);
    const noRecords = buildAReply(buildQuery(9, 'cache.billing.svc.cluster.local'), []);
    assert.equal(answeredNamespace(noRecords, 'shop'), undefined);
  });

  it('is nothing for malformed replies and labels that cannot be namespaces', () => {
    assert.equal(answeredNamespace(Buffer.from([1, 2, 3]), 'shop'), undefined);
    const truncated = answer('cache.billing.svc.cluster.local').subarray(0, 20);
    assert.equal(answeredNamespace(truncated, 'shop'), undefined);
    assert.equal(answeredNamespace(answer('a.under_score.svc.cluster.local'), 'shop'), undefined);
  });
});

/** A fake API with a Service `db` in each of `namespaces`, and watches of `shop` as home. */
async function watchesOver(namespaces: string[], acrossAllowed: boolean) {
  const kube = await new FakeKube().start();
  kube.forbidAcrossNamespaces = !acrossAllowed;
  for (const [i, ns] of namespaces.entries()) {
    kube.put(paths.services(ns), {
      metadata: { name: 'db' },
      spec: { clusterIP: `10.96.0.${i + 1}`, ports: [{ port: 5432 }] },
    });
  }
  const api = createApiTransport(
    tokenEndpoint({ server: kube.url, token: () => 'test-token' }, { context: 'test' }),
  );
  const stop = new AbortController();
  const changes = { count: 0 };
  const watches = new ServiceWatches({
    api,
    home: 'shop',
    onChange: () => changes.count++,
    signal: stop.signal,
  });
  const listened = () => [...watches.services()].map((s) => `${s.name}.${s.namespace}`).sort();
  const close = async () => {
    stop.abort();
    await watches.close();
    api.close();
    await kube.stop();
  };
  return { kube, watches, changes, listened, close };
}

describe('Services of other namespaces', () => {
  it('are read through one watch pair across namespaces when allowed, listened on only once resolved into', async () => {
    const t = await watchesOver(['shop', 'a', 'b', 'c'], true);
    try {
      await t.watches.watch('shop');
      assert.deepEqual(t.listened(), ['db.shop']);
      await t.watches.watch('a');
      await t.watches.watch('b');
      assert.deepEqual(t.listened(), ['db.a', 'db.b', 'db.shop']);
      assert.deepEqual(t.watches.others(), { a: 'listening', b: 'listening' });
      await eventually(() => t.kube.watcherCount === 4, 5000, 'two watches at home, two across namespaces');

      const before = t.changes.count;
      t.kube.put(paths.services('c'), {
        metadata: { name: 'cache' },
        spec: { clusterIP: '10.96.1.1', ports: [{ port: 6379 }] },
      });
      t.kube.put(paths.services('a'), {
        metadata: { name: 'cache' },
        spec: { clusterIP: '10.96.1.2', ports: [{ port: 6379 }] },
      });
      await eventually(() => t.listened().includes('cache.a'), 5000, 'cache.a listened on');
      assert.equal(
        t.changes.count,
        before + 1,
        'a Service of a namespace nobody resolved into changes nothing',
      );
      assert.ok(!t.listened().includes('cache.c'));
      assert.equal(t.kube.watcherCount, 4);
    } finally {
      await t.close();
    }
  });

  it('are watched namespace by namespace where listing across namespaces is forbidden', async () => {
    const t = await watchesOver(['shop', 'a'], false);
    try {
      await t.watches.watch('a');
      assert.deepEqual(t.listened(), ['db.a', 'db.shop']);
      assert.deepEqual(t.watches.others(), { a: 'listening' });
      await eventually(() => t.kube.watcherCount === 4, 5000, 'two watches at home, two in a');
      assert.ok(
        t.kube.requests.some((r) => r.startsWith('/api/v1/services?')),
        'tried across namespaces first',
      );
    } finally {
      await t.close();
    }
  });
});
