import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import {
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
import { aRecords, buildAReply, buildQuery, decodeDns } from '../../support/dns.js';

/** A query for `name` announcing an EDNS payload size of `size`. */
function ednsQuery(id: number, name: string, size: number): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: 'A', class: 'IN' }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: size,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ],
  });
}

describe('dns wire helpers', () => {
  it('builds SERVFAIL from the query id and question', () => {
    const query = buildQuery(0xbeef, 'inventory.shop.svc.cluster.local', 'A');
    const reply = decodeDns(servfail(query)!);
    assert.equal(reply.id, 0xbeef);
    assert.equal(reply.type, 'response', 'QR set');
    assert.equal(reply.flag_rd, true, 'RD copied');
    assert.equal(reply.flag_ra, true);
    assert.equal(reply.rcode, 'SERVFAIL');
    assert.deepEqual(reply.questions, [{ name: 'inventory.shop.svc.cluster.local', type: 'A', class: 'IN' }]);
    assert.deepEqual([reply.answers, reply.authorities, reply.additionals], [[], [], []]);
  });

  it('drops additional records of the query from the SERVFAIL', () => {
    const reply = servfail(ednsQuery(7, 'a.b', 4096))!;
    assert.deepEqual(decodeDns(reply).additionals, []);
    assert.equal(reply.length, buildQuery(7, 'a.b').length);
  });

  it('answers a malformed question with the id alone, and nothing for a runt', () => {
    const broken = Buffer.concat([buildQuery(9, 'x').subarray(0, 12), Buffer.from([40, 1, 2])]);
    const reply = decodeDns(servfail(broken)!);
    assert.equal(reply.id, 9);
    assert.equal(reply.rcode, 'SERVFAIL');
    assert.deepEqual(reply.questions, []);
    assert.equal(servfail(Buffer.from([1, 2, 3])), undefined);
  });

  it('reads the EDNS payload size, defaulting to 512', () => {
    assert.equal(maxUdpReply(buildQuery(1, 'a')), 512);
    assert.equal(maxUdpReply(ednsQuery(1, 'a', 1232)), 1232);
    assert.equal(maxUdpReply(ednsQuery(1, 'a', 100)), 512);
    assert.equal(maxUdpReply(ednsQuery(1, 'a', 65535)), 65507);
  });

  it('sets TC on a truncated reply', () => {
    const reply = decodeDns(emptyReply(buildQuery(3, 'big.example'), 0, true)!);
    assert.equal(reply.flag_tc, true);
    assert.equal(reply.rcode, 'NOERROR');
  });

  it('reads the header, rcode and first question of any well-formed message', () => {
    const query = buildQuery(0x4321, 'DB-0.db.Shop.svc.cluster.local', 'SRV', false);
    assert.deepEqual(firstQuestion(query), { name: 'db-0.db.shop.svc.cluster.local', type: 33, class: 1 });
    assert.deepEqual(readHeader(query), {
      id: 0x4321,
      flags: 0,
      qdcount: 1,
      ancount: 0,
      nscount: 0,
      arcount: 0,
    });
    const nx = dnsPacket.encode({ type: 'response', id: 1, flags: 3, questions: [] });
    assert.equal(decodeDns(nx).rcode, 'NXDOMAIN');
    assert.equal(rcodeOf(nx), 3);
    assert.equal(rcodeOf(servfail(query)!), RCODE_SERVFAIL);
  });

  it('rewrites only the mapped A records, leaving every other byte alone', () => {
    const query = buildQuery(5, 'db.shop.svc.cluster.local');
    const reply = buildAReply(query, ['10.96.0.20', '10.244.1.7']);
    const map = new Map([['10.96.0.20', '127.96.0.20']]);
    const rewritten = rewriteARecords(reply, (ip) => map.get(ip));
    assert.deepEqual(aRecords(rewritten), ['127.96.0.20', '10.244.1.7']);
    assert.equal(rewritten.length, reply.length);
    const changed = [...rewritten.keys()].filter((i) => rewritten[i] !== reply[i]);
    assert.equal(changed.length, 1, 'only the differing address byte (10 → 127)');
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
    const renumbered = withId(q, 12);
    assert.equal(decodeDns(renumbered).id, 12);
    assert.deepEqual(renumbered.subarray(2), q.subarray(2));
  });
});
