import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlDecoder, encodeControl } from '../../../src/tunnel/control.js';
import { encodeFrame, FRAME_PAYLOAD_MAX, LengthPrefixDecoder } from '../../../src/tunnel/framing.js';
import { PortForwardDecoder } from '../../../src/tunnel/portforward.js';
import {
  formatTarget,
  inboundInfoHeaders,
  parseInboundInfo,
  parseTarget,
} from '../../../src/tunnel/protocol.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('length-prefix framing', () => {
  it('round-trips payloads split at every byte boundary', () => {
    const payloads = [
      Buffer.alloc(0),
      Buffer.from('a'),
      Buffer.alloc(300, 7),
      Buffer.alloc(FRAME_PAYLOAD_MAX, 1),
    ];
    const wire = Buffer.concat(payloads.map((p) => encodeFrame(p)));
    for (const step of [1, 2, 3, 7, 1000, wire.length]) {
      const decoder = new LengthPrefixDecoder();
      const out: Buffer[] = [];
      for (let i = 0; i < wire.length; i += step) out.push(...decoder.push(wire.subarray(i, i + step)));
      assert.deepEqual(out, payloads, `step ${step}`);
      assert.equal(decoder.buffered, 0);
    }
  });

  it('refuses payloads above the limit on both sides', () => {
    assert.throws(
      () => encodeFrame(Buffer.alloc(FRAME_PAYLOAD_MAX + 1)),
      (e) => isDevboxError(e, 'BAD_INPUT'),
    );
    const decoder = new LengthPrefixDecoder(100);
    assert.throws(
      () => decoder.push(Buffer.from([0, 101])),
      (e) => isDevboxError(e, 'PROTOCOL'),
    );
  });
});

describe('control messages', () => {
  it('decodes lines split anywhere, skipping blank lines', () => {
    const wire = Buffer.concat([
      encodeControl({ type: 'stats-request', id: 1 }),
      Buffer.from('\n'),
      encodeControl({ type: 'accept-stop', generation: 2 }),
    ]);
    for (let step = 1; step <= wire.length; step++) {
      const decoder = new ControlDecoder();
      const out = [];
      for (let i = 0; i < wire.length; i += step) out.push(...decoder.push(wire.subarray(i, i + step)));
      assert.deepEqual(out, [
        { type: 'stats-request', id: 1 },
        { type: 'accept-stop', generation: 2 },
      ]);
    }
  });

  it('keeps multi-byte characters split across chunks', () => {
    const wire = encodeControl({
      type: 'hello',
      protocol: 1,
      hostname: 'héllo-✓',
      node: 'v20',
      intercepts: [],
    });
    const decoder = new ControlDecoder();
    const out = [];
    for (let i = 0; i < wire.length; i++) out.push(...decoder.push(wire.subarray(i, i + 1)));
    assert.equal((out[0] as { hostname: string }).hostname, 'héllo-✓');
  });

  it('rejects non-JSON, non-objects, missing type and over-long lines', () => {
    for (const line of ['nope', '[1]', '"x"', 'null', '{"id":1}', '{"type":5}']) {
      assert.throws(
        () => new ControlDecoder().push(Buffer.from(`${line}\n`)),
        (e) => isDevboxError(e, 'PROTOCOL'),
        line,
      );
    }
    const decoder = new ControlDecoder(100);
    assert.throws(
      () => decoder.push(Buffer.alloc(101, 0x61)),
      (e) => isDevboxError(e, 'PROTOCOL'),
    );
    const decoder2 = new ControlDecoder(100);
    decoder2.push(Buffer.alloc(60, 0x61));
    assert.throws(
      () => decoder2.push(Buffer.alloc(60, 0x61)),
      (e) => isDevboxError(e, 'PROTOCOL'),
    );
  });
});

describe('port-forward frame decoder', () => {
  it('strips the port prefix once per channel, even when data rides in the same frame', () => {
    const d = new PortForwardDecoder(8080);
    assert.deepEqual(d.decode(Buffer.from([0, 0x90, 0x1f])), { kind: 'none' });
    assert.deepEqual(d.decode(Buffer.from([0, 0x90, 0x1f])), {
      kind: 'data',
      data: Buffer.from([0x90, 0x1f]),
    });
    const e = new PortForwardDecoder(8080);
    assert.deepEqual(e.decode(Buffer.from([0, 0x90, 0x1f, 65])), { kind: 'data', data: Buffer.from('A') });
    assert.deepEqual(e.decode(Buffer.from([1, 0x90, 0x1f])), { kind: 'none' });
    assert.deepEqual(e.decode(Buffer.from([1, 66])), { kind: 'error', text: Buffer.from('B') });
  });

  it('rejects empty frames, unknown channels, short or wrong port prefixes', () => {
    const bad = [[], [2, 0, 0], [0, 0x90], [0, 0x91, 0x1f], [255]];
    for (const frame of bad) {
      assert.throws(
        () => new PortForwardDecoder(8080).decode(Buffer.from(frame)),
        (e) => isDevboxError(e, 'PROTOCOL'),
      );
    }
  });
});

describe('targets', () => {
  it('formats and parses host:port and [v6]:port', () => {
    for (const [host, port] of [
      ['10.96.0.10', 53],
      ['inventory.shop.svc.cluster.local', 8080],
      ['fd00::1', 443],
    ] as const) {
      assert.deepEqual(parseTarget(formatTarget(host, port)), { host, port });
    }
  });

  it('rejects malformed targets', () => {
    for (const t of [
      undefined,
      '',
      'host',
      'host:',
      ':80',
      'host:0',
      'host:65536',
      'fd00::1:80',
      '[fd00::1]80',
      'a b:1',
      'h:8x',
    ]) {
      assert.equal(parseTarget(t), undefined, String(t));
    }
  });
});

describe('inbound connection info', () => {
  const info = { clientAddress: '10.244.0.7', clientPort: 40123, interceptPort: 8080, appPort: 80 };

  it('round-trips through its headers', () => {
    assert.deepEqual(parseInboundInfo(inboundInfoHeaders(info)), info);
  });

  it('refuses a port outside 1..65535 in any field', () => {
    for (const field of ['clientPort', 'interceptPort', 'appPort'] as const) {
      for (const port of [0, 65536, 99999]) {
        const headers = inboundInfoHeaders({ ...info, [field]: port });
        assert.equal(parseInboundInfo(headers), undefined, `${field} ${port}`);
      }
    }
  });
});
