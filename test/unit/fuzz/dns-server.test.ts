/**
 * Seeded fuzzing of the sidecar's DNS server, the one listener the app's own bytes reach:
 * garbage datagrams, garbage TCP streams and a relay (the cluster side) that answers with
 * garbage, short replies, errors or nothing. The server must keep answering real queries
 * with their own id, over UDP and TCP, and never end the process.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type DnsServer, startDnsServer } from '../../../src/sidecar/dns-server.js';
import { aRecords, buildAReply, buildQuery, decodeDns, questionOf } from '../../support/dns.js';
import { fuzzAsync, Rng } from '../../support/fuzz.js';

const CANARY = 'canary.shop.svc.cluster.local';

/** The cluster side: a real answer for the canary, else what the query's own hash picks. */
async function hostileRelay(query: Buffer, signal: AbortSignal): Promise<Buffer> {
  let name: string | undefined;
  try {
    name = questionOf(query)?.name;
  } catch {}
  if (name === CANARY) return buildAReply(query, ['10.96.0.42']);
  const rng = new Rng(createHash('sha256').update(query).digest().readUInt32BE(0));
  switch (rng.int(6)) {
    case 0:
      return rng.bytes(rng.int(600));
    case 1:
      return rng.bytes(rng.int(12));
    case 2:
      throw new Error('relay failed');
    case 3:
      return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)));
    case 4:
      return rng.mutate(name === undefined ? query : buildAReply(query, ['10.96.0.1', '10.96.0.2']));
    default:
      return buildAReply(
        query,
        Array.from({ length: rng.int(80) }, (_, i) => `10.1.${i}.1`),
      );
  }
}

function udpAsk(port: number, query: Buffer, id: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('no UDP answer to the canary'));
    }, 2000);
    socket.on('message', (msg) => {
      if (msg.length < 2 || msg.readUInt16BE(0) !== id) return;
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.send(query, port, '127.0.0.1');
  });
}

/** The canary's reply on a connection that first carries `garbage`, or 'closed' if the server hung up. */
function tcpAsk(port: number, garbage: Buffer[], query: Buffer, id: number): Promise<Buffer | 'closed'> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no TCP answer to the canary'));
    }, 2000);
    let buffered = Buffer.alloc(0);
    socket.on('connect', () => {
      for (const chunk of garbage) socket.write(chunk);
      socket.write(Buffer.concat([Buffer.from([query.length >> 8, query.length & 0xff]), query]));
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        const reply = buffered.subarray(2, 2 + buffered.readUInt16BE(0));
        buffered = buffered.subarray(2 + reply.length);
        if (reply.length >= 2 && reply.readUInt16BE(0) === id) {
          clearTimeout(timer);
          socket.destroy();
          resolve(reply);
        }
      }
    });
  });
}

describe('fuzz: the sidecar DNS server', () => {
  let server: DnsServer;
  before(async () => {
    server = await startDnsServer({ address: '127.0.0.1', port: 0, relay: hostileRelay, timeoutMs: 50 });
  });
  after(async () => {
    await server.close();
  });

  it('answers real queries over UDP whatever datagrams and relay answers come before', async () => {
    await fuzzAsync('dns server udp', { rounds: 60 }, async (rng, round) => {
      const sender = dgram.createSocket('udp4');
      for (let i = 0; i < 5; i++) {
        const valid = buildQuery(
          rng.int(65536),
          `n${rng.int(1000)}.shop`,
          rng.pick(['A', 'AAAA', 'SRV'] as const),
        );
        const datagram = rng.chance(3) ? rng.bytes(rng.int(100)) : rng.mutate(valid);
        if (rng.chance(2)) sender.send(valid, server.udpPort, '127.0.0.1');
        sender.send(datagram, server.udpPort, '127.0.0.1');
      }
      const reply = await udpAsk(server.udpPort, buildQuery(round, CANARY), round);
      sender.close();
      assert.deepEqual(aRecords(reply), ['10.96.0.42']);
      assert.equal(decodeDns(reply).rcode, 'NOERROR');
    });
  });

  it('answers real queries over TCP after garbage frames, or hangs up on the garbage', async () => {
    await fuzzAsync('dns server tcp', { rounds: 40 }, async (rng, round) => {
      const frames: Buffer[] = [];
      for (let i = rng.int(4); i > 0; i--) {
        // Whole frames only: a length prefix announcing more than follows would swallow the canary.
        const body = rng.chance(2)
          ? rng.bytes(rng.int(40))
          : rng.mutate(buildQuery(rng.int(65536), 'x.shop'));
        frames.push(Buffer.concat([Buffer.from([body.length >> 8, body.length & 0xff]), body]));
      }
      const id = 1000 + round;
      const canary = buildQuery(id, CANARY);
      let reply = await tcpAsk(server.tcpPort, frames, canary, id);
      // A malformed query ends its connection (RFC 7766 allows it); the next connection is served.
      if (reply === 'closed') reply = await tcpAsk(server.tcpPort, [], canary, id);
      assert.notEqual(reply, 'closed', 'a clean connection is served');
      assert.deepEqual(aRecords(reply as Buffer), ['10.96.0.42']);
    });
  });
});
