import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  aRecords,
  buildAReply,
  buildQuery,
  emptyReply,
  firstQuestion,
  maxUdpReply,
  RCODE_SERVFAIL,
  rcodeOf,
  readHeader,
  rewriteARecords,
  servfail,
  withId,
} from '../../../src/sidecar/dns-wire.js';

/** Appends an EDNS OPT record announcing `size` to a query. */
function withEdns(query: Buffer, size: number): Buffer {
  const opt = Buffer.alloc(11);
  opt[0] = 0; // root name
  opt.writeUInt16BE(41, 1);
  opt.writeUInt16BE(size, 3);
  const out = Buffer.concat([query, opt]);
  out.writeUInt16BE(1, 10);
  return out;
}

describe('dns wire helpers', () => {
  it('builds SERVFAIL from the query id and question', () => {
    const query = buildQuery(0xbeef, 'inventory.shop.svc.cluster.local', 1);
    const reply = servfail(query)!;
    const h = readHeader(reply);
    assert.equal(h.id, 0xbeef);
    assert.equal(h.flags & 0x8000, 0x8000, 'QR set');
    assert.equal(h.flags & 0x0100, 0x0100, 'RD copied');
    assert.equal(rcodeOf(reply), RCODE_SERVFAIL);
    assert.equal(h.qdcount, 1);
    assert.equal(h.ancount + h.nscount + h.arcount, 0);
    assert.deepEqual(firstQuestion(reply), { name: 'inventory.shop.svc.cluster.local', type: 1, class: 1 });
  });

  it('drops additional records of the query from the SERVFAIL', () => {
    const reply = servfail(withEdns(buildQuery(7, 'a.b'), 4096))!;
    assert.equal(readHeader(reply).arcount, 0);
    assert.equal(reply.length, buildQuery(7, 'a.b').length);
  });

  it('answers a malformed question with the id alone, and nothing for a runt', () => {
    const broken = Buffer.concat([buildQuery(9, 'x').subarray(0, 12), Buffer.from([40, 1, 2])]);
    const reply = servfail(broken)!;
    assert.equal(readHeader(reply).id, 9);
    assert.equal(readHeader(reply).qdcount, 0);
    assert.equal(servfail(Buffer.from([1, 2, 3])), undefined);
  });

  it('reads the EDNS payload size, defaulting to 512', () => {
    assert.equal(maxUdpReply(buildQuery(1, 'a')), 512);
    assert.equal(maxUdpReply(withEdns(buildQuery(1, 'a'), 1232)), 1232);
    assert.equal(maxUdpReply(withEdns(buildQuery(1, 'a'), 100)), 512);
    assert.equal(maxUdpReply(withEdns(buildQuery(1, 'a'), 65535)), 65507);
  });

  it('sets TC on a truncated reply', () => {
    const reply = emptyReply(buildQuery(3, 'big.example'), 0, true)!;
    assert.equal(readHeader(reply).flags & 0x0200, 0x0200);
  });

  it('rewrites only the mapped A records, leaving every other byte alone', () => {
    const query = buildQuery(5, 'db.shop.svc.cluster.local');
    const reply = buildAReply(query, ['10.96.0.20', '10.244.1.7']);
    const map = new Map([['10.96.0.20', '127.96.0.20']]);
    const rewritten = rewriteARecords(reply, (ip) => map.get(ip));
    assert.deepEqual(aRecords(rewritten), ['127.96.0.20', '10.244.1.7']);
    assert.equal(rewritten.length, reply.length);
    assert.deepEqual(aRecords(reply), ['10.96.0.20', '10.244.1.7'], 'original untouched');
    assert.equal(
      rewriteARecords(reply, () => undefined),
      reply,
      'no copy when nothing maps',
    );
    const garbage = Buffer.from('not dns at all, but long enough');
    assert.equal(
      rewriteARecords(garbage, () => '127.0.0.9'),
      garbage,
    );
  });

  it('replaces the id only when it differs', () => {
    const q = buildQuery(11, 'a');
    assert.equal(withId(q, 11), q);
    assert.equal(readHeader(withId(q, 12)).id, 12);
  });
});
