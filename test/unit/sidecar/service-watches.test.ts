import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { answeredNamespace } from '../../../src/sidecar/service-watches.js';
import { buildAReply, buildQuery } from '../../support/dns.js';

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
