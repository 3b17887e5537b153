/**
 * Seeded fuzzing of the sidecar's DNS wire code: queries come from the app, replies from the
 * cluster through the tunnel. Nothing may throw but DnsFormatError where the code documents it,
 * and what the code reads or writes is checked against dns-packet, an independent codec.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import dnsPacket from 'dns-packet';
import {
  DnsFormatError,
  emptyReply,
  firstQuestion,
  maxUdpReply,
  rcodeOf,
  readHeader,
  rewriteARecords,
  servfail,
  UDP_PAYLOAD_MAX,
  withId,
} from '../../../src/sidecar/dns-wire.js';
import { answeredNamespace } from '../../../src/sidecar/service-watches.js';
import { decodeDns } from '../../support/dns.js';
import { fuzz, onlyTypedErrors, type Rng } from '../../support/fuzz.js';

const formatError = (err: unknown) => err instanceof DnsFormatError;
const QUESTION_TYPES: Record<string, number> = { A: 1, AAAA: 28, SRV: 33, TXT: 16 };

function randomName(rng: Rng): string {
  const labels = Array.from({ length: 1 + rng.int(6) }, () =>
    rng.string(1 + rng.int(rng.chance(10) ? 63 : 12), 'abcdefghijklmnopqrstuvwxyz0123456789-_'),
  );
  if (rng.chance(3)) labels.push(rng.pick(['svc', 'shop']), 'svc', 'cluster', 'local');
  return labels.join('.');
}

function randomAddress(rng: Rng): string {
  return [rng.int(256), rng.int(256), rng.int(256), rng.int(256)].join('.');
}

function randomRecord(rng: Rng, name: string): dnsPacket.Answer {
  const base = { name: rng.chance(2) ? name : randomName(rng), ttl: rng.int(100) };
  switch (rng.int(5)) {
    case 0:
    case 1:
      return { ...base, type: 'A', data: randomAddress(rng) };
    case 2:
      return { ...base, type: 'AAAA', data: `fd00::${rng.int(65536).toString(16)}` };
    case 3:
      return { ...base, type: 'CNAME', data: randomName(rng) };
    default:
      return {
        ...base,
        type: 'SRV',
        data: { priority: rng.int(10), weight: rng.int(100), port: rng.int(65536), target: randomName(rng) },
      };
  }
}

/** A well-formed message: a query (maybe with EDNS) or a reply with records in every section. */
function randomMessage(rng: Rng): Buffer {
  const name = randomName(rng);
  const records = (n: number) => Array.from({ length: rng.int(n) }, () => randomRecord(rng, name));
  const edns: dnsPacket.Answer[] = rng.chance(2)
    ? [
        {
          type: 'OPT',
          name: '.',
          udpPayloadSize: rng.int(65536),
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ]
    : [];
  return dnsPacket.encode({
    type: rng.chance(2) ? 'query' : 'response',
    id: rng.int(65536),
    flags: rng.int(0x8000) & ~0x7800,
    questions: rng.chance(10)
      ? []
      : [{ name, type: rng.pick(['A', 'AAAA', 'SRV', 'TXT'] as const), class: 'IN' }],
    answers: records(5),
    authorities: records(2),
    additionals: [...records(2), ...edns],
  });
}

/** Well-formed, cut short, mutated, or noise. */
function hostileMessage(rng: Rng): { message: Buffer; wellFormed: boolean } {
  const valid = randomMessage(rng);
  switch (rng.int(4)) {
    case 0:
      return { message: valid, wellFormed: true };
    case 1:
      return { message: valid.subarray(0, rng.int(valid.length)), wellFormed: false };
    case 2:
      return { message: rng.mutate(valid), wellFormed: false };
    default:
      return { message: rng.bytes(rng.int(80)), wellFormed: false };
  }
}

describe('fuzz: DNS wire', () => {
  it('reading a header, an rcode or the first question throws only DnsFormatError, and agrees with dns-packet', () => {
    fuzz('dns read', { rounds: 600 }, (rng) => {
      const { message, wellFormed } = hostileMessage(rng);
      const header = onlyTypedErrors(formatError, () => readHeader(message), message);
      const question = onlyTypedErrors(formatError, () => firstQuestion(message), message);
      const rcode = rcodeOf(message);
      if (!wellFormed) return;
      const decoded = decodeDns(message);
      assert.equal(header?.id, decoded.id);
      assert.equal(rcode, message.readUInt16BE(2) & 0xf);
      const q = decoded.questions?.[0];
      assert.deepEqual(
        question && { name: question.name, type: question.type },
        q && {
          name: q.name.toLowerCase(),
          type: QUESTION_TYPES[q.type],
        },
      );
    });
  });

  it('an empty reply (SERVFAIL, truncated) never throws, keeps the id and a readable question', () => {
    fuzz('dns empty reply', { rounds: 600 }, (rng) => {
      const { message: query, wellFormed } = hostileMessage(rng);
      const truncated = rng.chance(2);
      const rcode = rng.int(16);
      const reply = emptyReply(query, rcode, truncated);
      assert.deepEqual(servfail(query)?.subarray(4), emptyReply(query, 2)?.subarray(4));
      if (query.length < 12) {
        assert.equal(reply, undefined);
        return;
      }
      assert.ok(reply);
      // Read by hand: a malformed query's question may hold a pointer to bytes the reply leaves out.
      const flags = reply.readUInt16BE(2);
      assert.equal(reply.readUInt16BE(0), query.readUInt16BE(0), 'id kept');
      assert.deepEqual(
        [flags & 0x8000, flags & 0x0200, flags & 0xf],
        [0x8000, truncated ? 0x0200 : 0, rcode],
      );
      assert.deepEqual([reply.readUInt16BE(6), reply.readUInt16BE(8), reply.readUInt16BE(10)], [0, 0, 0]);
      if (!wellFormed) return;
      const decoded = decodeDns(reply);
      assert.equal(decoded.id, query.readUInt16BE(0));
      assert.deepEqual(decoded.questions, decodeDns(query).questions);
    });
  });

  it('the EDNS payload size is what the query announces, within 512 and the UDP maximum', () => {
    fuzz('dns edns size', { rounds: 600 }, (rng) => {
      const { message, wellFormed } = hostileMessage(rng);
      const size = maxUdpReply(message);
      assert.ok(Number.isInteger(size) && size >= 512 && size <= UDP_PAYLOAD_MAX, String(size));
      if (!wellFormed) return;
      const opt = decodeDns(message).additionals?.find((a) => a.type === 'OPT');
      assert.equal(size, opt ? Math.min(Math.max(512, opt.udpPayloadSize), UDP_PAYLOAD_MAX) : 512);
    });
  });

  it('rewriting A records never throws, changes only mapped addresses and keeps the length', () => {
    fuzz('dns rewrite', { rounds: 600 }, (rng) => {
      const { message, wellFormed } = hostileMessage(rng);
      const to = `127.${rng.int(256)}.${rng.int(256)}.${rng.int(256)}`;
      const mapOdd = (ip: string) => (Number(ip.split('.')[3]) % 2 ? to : undefined);
      const rewritten = rewriteARecords(message, mapOdd);
      assert.equal(rewritten.length, message.length);
      assert.equal(
        rewriteARecords(message, () => undefined),
        message,
      );
      if (!wellFormed) return;
      const before = decodeDns(message);
      const after = decodeDns(rewritten);
      const expect = (records: dnsPacket.Answer[] | undefined) =>
        (records ?? []).map((r) => (r.type === 'A' && mapOdd(r.data) ? { ...r, data: to } : r));
      assert.deepEqual(after.answers, expect(before.answers));
      assert.deepEqual(after.authorities, expect(before.authorities));
      assert.deepEqual(after.additionals, expect(before.additionals));
    });
  });

  it('replacing the id never throws and changes only the id', () => {
    fuzz('dns id', { rounds: 600 }, (rng) => {
      const { message } = hostileMessage(rng);
      const id = rng.int(65536);
      const out = withId(message, id);
      if (message.length >= 2) assert.equal(out.readUInt16BE(0), id);
      assert.deepEqual(out.subarray(2), message.subarray(2));
    });
  });

  it('the namespace an answer is about is a DNS label or nothing, never an error', () => {
    fuzz('dns answered namespace', { rounds: 800 }, (rng) => {
      const { message } = hostileMessage(rng);
      const ns = answeredNamespace(message, 'shop');
      if (ns !== undefined) assert.match(ns, /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/);
    });
  });
});
