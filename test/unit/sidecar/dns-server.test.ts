import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { type DnsRelay, type DnsServer, startDnsServer } from '../../../src/sidecar/dns-server.js';
import { NoTunnelError } from '../../../src/sidecar/tunnel-manager.js';
import { aRecords, buildAReply, buildQuery, decodeDns, questionOf } from '../../support/dns.js';

function udpAsk(port: number, query: Buffer, timeoutMs = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('no UDP answer'));
    }, timeoutMs);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.send(query, port, '127.0.0.1');
  });
}

/** Writes `chunks` (raw bytes) on one TCP connection and collects `count` length-framed replies. */
function tcpAsk(port: number, chunks: Buffer[], count: number): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let buffered = Buffer.alloc(0);
    const replies: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only ${replies.length} TCP answers`));
    }, 3000);
    socket.on('connect', async () => {
      for (const c of chunks) {
        socket.write(c);
        await new Promise((r) => setTimeout(r, 15));
      }
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        replies.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
      }
      if (replies.length === count) {
        clearTimeout(timer);
        socket.end();
        resolve(replies);
      }
    });
    socket.on('error', reject);
  });
}

const frame = (msg: Buffer) => Buffer.concat([Buffer.from([msg.length >> 8, msg.length & 0xff]), msg]);

/** A relay that answers every A question with 10.96.0.<n> where n is the name's length. */
const fakeRelay: DnsRelay = async (query) => {
  const q = questionOf(query)!;
  return buildAReply(query, [`10.96.0.${q.name.length}`]);
};

describe('dns server', () => {
  let server: DnsServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it('relays a UDP query and returns the relay answer', async () => {
    const seen: string[] = [];
    server = await startDnsServer({
      address: '127.0.0.1',
      port: 0,
      relay: async (q, s) => {
        seen.push(questionOf(q)!.name);
        return fakeRelay(q, s);
      },
    });
    const reply = await udpAsk(server.udpPort, buildQuery(0x1234, 'inventory.shop'));
    assert.equal(decodeDns(reply).id, 0x1234);
    assert.deepEqual(aRecords(reply), ['10.96.0.14']);
    assert.deepEqual(seen, ['inventory.shop']);
    assert.equal(server.stats.queries, 1);
    assert.equal(server.stats.errors, 0);
  });

  it('answers SERVFAIL at once when no tunnel is up', async () => {
    server = await startDnsServer({
      address: '127.0.0.1',
      port: 0,
      relay: async () => {
        throw new NoTunnelError();
      },
    });
    const started = Date.now();
    const reply = await udpAsk(server.udpPort, buildQuery(77, 'db-0.db.shop.svc.cluster.local', 'SRV'));
    assert.ok(Date.now() - started < 1000);
    const decoded = decodeDns(reply);
    assert.equal(decoded.id, 77);
    assert.equal(decoded.rcode, 'SERVFAIL');
    assert.deepEqual(decoded.questions, [
      { name: 'db-0.db.shop.svc.cluster.local', type: 'SRV', class: 'IN' },
    ]);
    assert.equal(server.stats.errors, 1);
    assert.match(server.stats.lastError ?? '', /no tunnel/);
  });

  it('answers SERVFAIL when the relay hangs past the timeout', async () => {
    let aborted = false;
    server = await startDnsServer({
      address: '127.0.0.1',
      port: 0,
      timeoutMs: 150,
      relay: (_q, signal) =>
        new Promise(() => {
          signal.addEventListener('abort', () => {
            aborted = true;
          });
        }),
    });
    const reply = await udpAsk(server.udpPort, buildQuery(5, 'slow.example'));
    assert.equal(decodeDns(reply).rcode, 'SERVFAIL');
    assert.equal(server.stats.timeouts, 1);
    assert.ok(aborted, 'the relay was told to give up');
  });

  it('keeps the query id even when the relay answers with another', async () => {
    server = await startDnsServer({
      address: '127.0.0.1',
      port: 0,
      relay: async (q) => {
        const r = buildAReply(q, ['10.0.0.1']);
        r.writeUInt16BE(999, 0);
        return r;
      },
    });
    assert.equal(decodeDns(await udpAsk(server.udpPort, buildQuery(4242, 'a.b'))).id, 4242);
  });

  it('speaks TCP with 2-byte length framing: pipelined queries and frames split across writes', async () => {
    server = await startDnsServer({ address: '127.0.0.1', port: 0, relay: fakeRelay });
    const q1 = buildQuery(1, 'one.shop');
    const q2 = buildQuery(2, 'second.shop');
    const q3 = buildQuery(3, 'third-name.shop');
    const both = Buffer.concat([frame(q1), frame(q2)]);
    const third = frame(q3);
    const replies = await tcpAsk(
      server.tcpPort,
      [both, third.subarray(0, 1), third.subarray(1, 9), third.subarray(9)],
      3,
    );
    const byId = new Map(replies.map((r) => [decodeDns(r).id, aRecords(r)]));
    assert.deepEqual(byId.get(1), ['10.96.0.8']);
    assert.deepEqual(byId.get(2), ['10.96.0.11']);
    assert.deepEqual(byId.get(3), ['10.96.0.15']);
    assert.equal(server.stats.tcpQueries, 3);
  });

  it('answers SERVFAIL over TCP too when no tunnel is up', async () => {
    server = await startDnsServer({
      address: '127.0.0.1',
      port: 0,
      relay: async () => {
        throw new NoTunnelError();
      },
    });
    const [reply] = await tcpAsk(server.tcpPort, [frame(buildQuery(8, 'x.y'))], 1);
    assert.equal(decodeDns(reply!).id, 8);
    assert.equal(decodeDns(reply!).rcode, 'SERVFAIL');
  });

  it('truncates a UDP answer that is larger than the client accepts, and not over TCP', async () => {
    const many = Array.from({ length: 60 }, (_, i) => `10.1.0.${i}`);
    server = await startDnsServer({
      address: '127.0.0.1',
      port: 0,
      relay: async (q) => buildAReply(q, many),
    });
    const udpReply = await udpAsk(server.udpPort, buildQuery(21, 'big.shop'));
    assert.equal(decodeDns(udpReply).flag_tc, true, 'TC set');
    assert.deepEqual(decodeDns(udpReply).answers, []);
    const [tcpReply] = await tcpAsk(server.tcpPort, [frame(buildQuery(22, 'big.shop'))], 1);
    assert.equal(aRecords(tcpReply!).length, 60);
    assert.equal(server.stats.truncated, 1);
  });

  it('applies the rewrite hook to relayed answers', async () => {
    server = await startDnsServer({
      address: '127.0.0.1',
      port: 0,
      relay: async (q) => buildAReply(q, ['10.96.0.20']),
      rewrite: (r) => {
        const copy = Buffer.from(r);
        copy[copy.length - 4] = 127;
        return copy;
      },
    });
    assert.deepEqual(aRecords(await udpAsk(server.udpPort, buildQuery(1, 'a'))), ['127.96.0.20']);
  });
});
