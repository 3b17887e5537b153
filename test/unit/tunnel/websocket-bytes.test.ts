import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import {
  acceptKey,
  clientFrameHeader,
  openWebSocketBytes,
  WebSocketDecoder,
  type WebSocketEvent,
} from '../../../src/tunnel/websocket-bytes.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { Fixtures, readAll } from './harness.js';

/** A server frame (never masked): FIN and `opcode`, then `payload`. */
function serverFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const length = payload.length;
  const head =
    length < 126
      ? Buffer.from([(fin ? 0x80 : 0) | opcode, length])
      : length < 65536
        ? Buffer.from([(fin ? 0x80 : 0) | opcode, 126, length >> 8, length & 0xff])
        : Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, 127]), bigLength(length)]);
  return Buffer.concat([head, payload]);
}

function bigLength(length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(length));
  return b;
}

/** The payload bytes of all data events, and the other events, in order. */
function decodeAll(chunks: Buffer[]): { data: Buffer; others: WebSocketEvent[] } {
  const decoder = new WebSocketDecoder();
  const data: Buffer[] = [];
  const others: WebSocketEvent[] = [];
  for (const chunk of chunks) {
    for (const event of decoder.push(chunk)) {
      if (event.kind === 'data') data.push(event.data);
      else others.push(event);
    }
  }
  return { data: Buffer.concat(data), others };
}

describe('WebSocket framing', () => {
  it('answers the handshake key as RFC 6455 shows', () => {
    assert.equal(acceptKey('dGhlIHNhbXBsZSBub25jZQ=='), 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
  });

  it('writes client frame headers with FIN, the mask bit and a zero mask, in all three length forms', () => {
    assert.deepEqual([...clientFrameHeader(0x2, 5)], [0x82, 0x85, 0, 0, 0, 0]);
    assert.deepEqual([...clientFrameHeader(0x2, 126)], [0x82, 0xfe, 0, 126, 0, 0, 0, 0]);
    assert.deepEqual([...clientFrameHeader(0x8, 2)], [0x88, 0x82, 0, 0, 0, 0]);
    const big = clientFrameHeader(0x2, 70_000);
    assert.equal(big[1], 0xff);
    assert.equal(big.readBigUInt64BE(2), 70_000n);
    assert.equal(big.length, 14);
  });

  it('reads the same bytes and control frames however the input is split', () => {
    const message = randomBytes(70_000);
    const wire = Buffer.concat([
      serverFrame(0x2, message.subarray(0, 100), false),
      serverFrame(0x9, Buffer.from('hi')),
      serverFrame(0x0, message.subarray(100, 300), false),
      serverFrame(0x0, message.subarray(300)),
      serverFrame(0xa, Buffer.alloc(0)),
      serverFrame(0x2, Buffer.from('tail')),
      serverFrame(0x8, Buffer.from([0x03, 0xe8, 0x62, 0x79, 0x65])),
    ]);
    const expected = Buffer.concat([message, Buffer.from('tail')]);
    for (const size of [1, 3, 125, 4096, wire.length]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < wire.length; i += size) chunks.push(wire.subarray(i, i + size));
      const { data, others } = decodeAll(chunks);
      assert.ok(data.equals(expected), `split every ${size} bytes`);
      assert.deepEqual(others, [
        { kind: 'ping', payload: Buffer.from('hi') },
        { kind: 'pong' },
        { kind: 'close', code: 1000, reason: 'bye' },
      ]);
    }
  });

  it('refuses what a server may not send with PROTOCOL errors', () => {
    const cases: [string, Buffer][] = [
      ['masked', Buffer.from([0x82, 0x81, 0, 0, 0, 0, 0x41])],
      ['text', serverFrame(0x1, Buffer.from('x'))],
      ['reserved bits', Buffer.from([0xc2, 0x00])],
      ['unknown opcode', serverFrame(0x3, Buffer.alloc(0))],
      ['oversize control', serverFrame(0x9, Buffer.alloc(126))],
      ['fragmented control', serverFrame(0x9, Buffer.alloc(1), false)],
      ['continuation first', serverFrame(0x0, Buffer.from('x'))],
      [
        'message in a message',
        Buffer.concat([serverFrame(0x2, Buffer.from('a'), false), serverFrame(0x2, Buffer.from('b'))]),
      ],
    ];
    for (const [what, wire] of cases) {
      assert.throws(
        () => new WebSocketDecoder().push(wire),
        (err) => isDevboxError(err, 'PROTOCOL'),
        what,
      );
    }
  });
});

/**
 * A WebSocket server on loopback that answers the handshake with `subprotocol`, echoes binary
 * messages, pings once after the handshake and records what it got.
 */
async function echoServer(fx: Fixtures, subprotocol: string, accept = acceptKey) {
  const received: { opcodes: number[]; pong?: Buffer } = { opcodes: [] };
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    let buf = Buffer.alloc(0);
    let upgraded = false;
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const key = /sec-websocket-key: (\S+)/i.exec(buf.subarray(0, end).toString())?.[1] ?? '';
        socket.write(
          `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept(key)}\r\nSec-WebSocket-Protocol: ${subprotocol}\r\n\r\n`,
        );
        socket.write(serverFrame(0x9, Buffer.from('ping?')));
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      // Client frames here are short and masked with zeros: the payload follows the mask as is.
      while (buf.length >= 6) {
        const length = buf[1]! & 0x7f;
        const offset = length === 126 ? 8 : 6;
        const size = length === 126 ? buf.readUInt16BE(2) : length;
        if (buf.length < offset + size) return;
        const opcode = buf[0]! & 0x0f;
        const payload = buf.subarray(offset, offset + size);
        received.opcodes.push(opcode);
        if (opcode === 0x2) socket.write(serverFrame(0x2, payload));
        if (opcode === 0xa) received.pong = Buffer.from(payload);
        if (opcode === 0x8) socket.end(serverFrame(0x8, payload));
        buf = buf.subarray(offset + size);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fx.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/x`), received };
}

describe('WebSocket byte stream', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('carries bytes both ways, answers pings, and closes with a close frame', async () => {
    const server = await echoServer(fx, 'SPDY/3.1+portforward.k8s.io');
    const { opened } = openWebSocketBytes({
      url: server.url,
      headers: {},
      tls: {},
      subprotocol: 'SPDY/3.1+portforward.k8s.io',
    });
    const stream = await opened;
    const echoed = readAll(stream);
    stream.write('hello ');
    stream.write(Buffer.alloc(300, 0x61));
    await once(stream, 'data');
    stream.end();
    const all = await echoed;
    assert.equal(all.toString(), `hello ${'a'.repeat(300)}`);
    assert.deepEqual(server.received.pong, Buffer.from('ping?'));
    assert.equal(server.received.opcodes.at(-1), 0x8);
  });

  it('refuses a server that picks another subprotocol or answers the key wrongly', async () => {
    for (const server of [
      await echoServer(fx, 'v4.channel.k8s.io'),
      await echoServer(fx, 'SPDY/3.1+portforward.k8s.io', () => 'wrong'),
    ]) {
      const { opened } = openWebSocketBytes({
        url: server.url,
        headers: {},
        tls: {},
        subprotocol: 'SPDY/3.1+portforward.k8s.io',
      });
      await assert.rejects(opened, /subprotocol "v4.channel.k8s.io"|Sec-WebSocket-Accept/);
    }
  });
});
