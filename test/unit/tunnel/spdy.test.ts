import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import zlib from 'node:zlib';
import {
  controlStreamId,
  dataFrameHeader,
  pingFrame,
  SpdyDecoder,
  type SpdyEvent,
  SpdyHeaderEncoder,
  synStreamFrame,
} from '../../../src/tunnel/spdy.js';
import { isDevboxError } from '../../../src/util/errors.js';

/** Parses a SPDY/3 name/value block (32-bit counts and lengths). */
function parseNameValues(raw: Buffer): [string, string][] {
  const pairs: [string, string][] = [];
  let offset = 4;
  for (let i = 0; i < raw.readUInt32BE(0); i++) {
    const nameLength = raw.readUInt32BE(offset);
    const name = raw.subarray(offset + 4, offset + 4 + nameLength).toString();
    offset += 4 + nameLength;
    const valueLength = raw.readUInt32BE(offset);
    pairs.push([name, raw.subarray(offset + 4, offset + 4 + valueLength).toString()]);
    offset += 4 + valueLength;
  }
  assert.equal(offset, raw.length, 'nothing after the pairs');
  return pairs;
}

function decodeAll(chunks: Buffer[]): SpdyEvent[] {
  const decoder = new SpdyDecoder();
  return chunks.flatMap((c) => decoder.push(c));
}

/** Data events merged per stream, with fins in order. */
function summary(events: SpdyEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    if (e.kind === 'data') {
      const last = out.at(-1);
      const key = `data ${e.streamId} `;
      if (last?.startsWith(key)) out[out.length - 1] = last + e.data.toString('hex');
      else out.push(key + e.data.toString('hex'));
    } else if (e.kind === 'fin') {
      out.push(`fin ${e.streamId}`);
    } else {
      out.push(`control ${e.type} ${e.flags} ${e.payload.toString('hex')}`);
    }
  }
  return out;
}

describe('SPDY header blocks', () => {
  it('form one zlib stream that an independent inflater reads back, block after block', () => {
    const encoder = new SpdyHeaderEncoder();
    const first = encoder.encode({ streamType: 'error', port: '47000', requestID: '0' });
    const second = encoder.encode({ streamtype: 'data', port: '47000', requestid: '0' });
    const inflate = (data: Buffer) => zlib.inflateSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.deepEqual(parseNameValues(inflate(first)), [
      ['streamtype', 'error'],
      ['port', '47000'],
      ['requestid', '0'],
    ]);
    const both = inflate(Buffer.concat([first, second]));
    const firstLength = inflate(first).length;
    assert.deepEqual(parseNameValues(both.subarray(firstLength)), [
      ['streamtype', 'data'],
      ['port', '47000'],
      ['requestid', '0'],
    ]);
    // Only the first block carries the zlib header; each block ends like a sync flush.
    assert.deepEqual([...first.subarray(0, 2)], [0x78, 0x01]);
    assert.notEqual(second[0], 0x78);
    for (const block of [first, second]) assert.deepEqual([...block.subarray(-5)], [0, 0, 0, 0xff, 0xff]);
  });

  it('splits a block larger than one stored deflate block', () => {
    const value = 'v'.repeat(100_000);
    const block = new SpdyHeaderEncoder().encode({ big: value });
    const raw = zlib.inflateSync(block, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    assert.deepEqual(parseNameValues(raw), [['big', value]]);
  });
});

describe('SPDY frames', () => {
  it('lays out SYN_STREAM, data and PING frames as SPDY/3 defines them', () => {
    const syn = synStreamFrame(3, Buffer.from('hb'));
    assert.equal(
      syn.toString('hex'),
      `80030001000000${(12).toString(16).padStart(2, '0')}00000003000000000000${Buffer.from('hb').toString('hex')}`,
    );
    assert.equal(dataFrameHeader(3, 0x010203, true).toString('hex'), '0000000301010203');
    assert.equal(pingFrame(7).toString('hex'), '800300060000000400000007');
    assert.throws(() => dataFrameHeader(1, 0x1000000), RangeError);
  });

  it('decodes the same events whatever the chunking, passing data on before its frame is complete', () => {
    const payload = randomBytes(5000);
    const reply = Buffer.from('800300020000000400000003', 'hex');
    const stream = Buffer.concat([
      reply,
      dataFrameHeader(3, payload.length),
      payload,
      dataFrameHeader(1, 5, false),
      Buffer.from('oops!'),
      dataFrameHeader(1, 0, true),
      dataFrameHeader(3, 2, true),
      Buffer.from('ok'),
      pingFrame(2),
    ]);
    const whole = summary(decodeAll([stream]));
    assert.deepEqual(whole, [
      'control 2 0 00000003',
      `data 3 ${payload.toString('hex')}`,
      `data 1 ${Buffer.from('oops!').toString('hex')}`,
      'fin 1',
      `data 3 ${Buffer.from('ok').toString('hex')}`,
      'fin 3',
      'control 6 0 00000002',
    ]);
    const bytewise = summary(decodeAll([...stream].map((b) => Buffer.from([b]))));
    assert.deepEqual(bytewise, whole);
    const firstData = new SpdyDecoder().push(stream.subarray(0, reply.length + 8 + 100));
    assert.equal(firstData.at(-1)?.kind, 'data', 'partial payload is delivered at once');
    assert.equal(controlStreamId(Buffer.from('8000000500', 'hex')), 5);
  });

  it('refuses a wrong version and an oversize control frame with PROTOCOL errors', () => {
    assert.throws(
      () => new SpdyDecoder().push(Buffer.from('8002000200000004', 'hex')),
      (err) => isDevboxError(err, 'PROTOCOL') && /version 2/.test((err as Error).message),
    );
    assert.throws(
      () => new SpdyDecoder().push(Buffer.from('8003000200ffffff', 'hex')),
      (err) => isDevboxError(err, 'PROTOCOL') && /exceeds/.test((err as Error).message),
    );
    assert.throws(
      () => controlStreamId(Buffer.alloc(2)),
      (err) => isDevboxError(err, 'PROTOCOL'),
    );
  });
});
