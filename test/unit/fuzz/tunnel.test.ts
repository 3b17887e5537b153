/**
 * Seeded fuzzing of the tunnel's wire decoders: everything the agent, the sidecar or the API
 * server's port-forward hands us. Each decoder may only throw its PROTOCOL error, must keep its
 * buffer bounded, and must give back what its encoder wrote, however the bytes are split.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControlDecoder, encodeControl } from '../../../src/tunnel/control.js';
import { encodeFrame, FRAME_PAYLOAD_MAX, LengthPrefixDecoder } from '../../../src/tunnel/framing.js';
import { PortForwardDecoder } from '../../../src/tunnel/portforward.js';
import {
  type ControlMessage,
  formatTarget,
  type InboundInfo,
  inboundInfoHeaders,
  parseInboundInfo,
  parseTarget,
} from '../../../src/tunnel/protocol.js';
import {
  controlStreamId,
  dataFrameHeader,
  pingFrame,
  rstStatusText,
  SpdyControl,
  SpdyDecoder,
  type SpdyEvent,
  SpdyHeaderEncoder,
  synStreamFrame,
} from '../../../src/tunnel/spdy.js';
import { WebSocketDecoder, type WebSocketEvent } from '../../../src/tunnel/websocket-bytes.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { fuzz, onlyTypedErrors, type Rng } from '../../support/fuzz.js';

const protocolError = (err: unknown) => isDevboxError(err, 'PROTOCOL');

/** `wire` cut into random pieces (empty ones included), as TCP may deliver it. */
function split(rng: Rng, wire: Buffer): Buffer[] {
  const pieces: Buffer[] = [];
  for (let offset = 0; offset < wire.length; ) {
    const size = rng.chance(8) ? 0 : 1 + rng.int(rng.chance(2) ? 8 : 2048);
    pieces.push(wire.subarray(offset, offset + size));
    offset += size;
  }
  return pieces;
}

/** Input that is noise, a valid message cut short, or a valid message with a few bytes changed. */
function hostile(rng: Rng, valid: Buffer, noiseMax: number): Buffer {
  switch (rng.int(3)) {
    case 0:
      return rng.bytes(rng.int(noiseMax));
    case 1:
      return valid.subarray(0, rng.int(valid.length + 1));
    default:
      return rng.mutate(valid);
  }
}

describe('fuzz: length-prefixed UDP framing', () => {
  it('random and truncated input throws only PROTOCOL errors, holding at most one frame', () => {
    fuzz('framing hostile', { rounds: 400 }, (rng) => {
      const limit = 1 + rng.int(2000);
      const decoder = new LengthPrefixDecoder(limit);
      const valid = encodeFrame(rng.bytes(rng.int(limit + 1)));
      onlyTypedErrors(protocolError, () => {
        for (let i = 0; i < 20; i++) {
          decoder.push(hostile(rng, valid, 4096));
          assert.ok(decoder.buffered <= limit + 1, 'buffer bounded by one frame');
        }
      });
    });
  });

  it('gives back every payload, however the stream is split', () => {
    fuzz('framing round trip', { rounds: 150 }, (rng) => {
      const payloads = Array.from({ length: rng.int(8) }, () =>
        rng.bytes(rng.chance(20) ? FRAME_PAYLOAD_MAX : rng.int(1500)),
      );
      const decoder = new LengthPrefixDecoder();
      const out = split(rng, Buffer.concat(payloads.map((p) => encodeFrame(p)))).flatMap((c) =>
        decoder.push(c),
      );
      assert.deepEqual(out, payloads);
      assert.equal(decoder.buffered, 0);
    });
  });
});

/** A control message of one of the kinds, with random (and non-ASCII) field values. */
function randomControl(rng: Rng): ControlMessage {
  const text = () => rng.string(rng.int(20), 'abc-.é✓😀"\\\n\t{}');
  switch (rng.int(4)) {
    case 0:
      return {
        type: 'hello',
        protocol: rng.int(5),
        hostname: text(),
        node: text(),
        intercepts: Array.from({ length: rng.int(3) }, () => ({
          listenPort: 1 + rng.int(65535),
          appPort: 1 + rng.int(65535),
        })),
      };
    case 1:
      return { type: 'stats-request', id: rng.int(2 ** 31) };
    case 2:
      return { type: 'accept-stop', generation: rng.int(1000) };
    default:
      return { type: text() } as unknown as ControlMessage;
  }
}

describe('fuzz: tunnel control messages', () => {
  it('random and truncated input throws only PROTOCOL errors and stays bounded', () => {
    fuzz('control hostile', { rounds: 400 }, (rng) => {
      const decoder = new ControlDecoder(1024);
      const valid = encodeControl(randomControl(rng));
      onlyTypedErrors(protocolError, () => {
        for (let i = 0; i < 10; i++) {
          decoder.push(hostile(rng, valid, 600));
          assert.ok(decoder.buffered <= 1024);
        }
      });
    });
  });

  it('gives back every message, multi-byte characters split anywhere', () => {
    fuzz('control round trip', { rounds: 300 }, (rng) => {
      const messages = Array.from({ length: 1 + rng.int(6) }, () => randomControl(rng));
      const wire = Buffer.concat(
        messages.flatMap((m) => (rng.chance(4) ? [Buffer.from('\n'), encodeControl(m)] : [encodeControl(m)])),
      );
      const decoder = new ControlDecoder();
      assert.deepEqual(
        split(rng, wire).flatMap((c) => decoder.push(c)),
        messages,
      );
      assert.equal(decoder.buffered, 0);
    });
  });
});

describe('fuzz: port-forward channel frames', () => {
  it('random frames decode or throw a PROTOCOL error', () => {
    fuzz('port-forward hostile', { rounds: 1500 }, (rng) => {
      const decoder = new PortForwardDecoder(rng.int(65536), rng.int(2));
      for (let i = 0; i < 5; i++) {
        const frame = rng.bytes(rng.int(8));
        if (rng.chance(2) && frame.length) frame[0] = rng.int(4);
        onlyTypedErrors(protocolError, () => decoder.decode(frame), frame);
      }
    });
  });

  it('gives back data and error text after the port prefix of each channel', () => {
    fuzz('port-forward round trip', { rounds: 500 }, (rng) => {
      const port = rng.int(65536);
      const decoder = new PortForwardDecoder(port);
      const prefix = Buffer.alloc(2);
      prefix.writeUInt16LE(port);
      const sent: Buffer[][] = [[], []];
      const got: Buffer[][] = [[], []];
      const prefixed = [false, false];
      for (let i = 0; i < 6; i++) {
        const channel = rng.int(2);
        const payload = rng.bytes(rng.int(40));
        const head = prefixed[channel] ? Buffer.alloc(0) : prefix;
        prefixed[channel] = true;
        sent[channel]!.push(payload);
        const frame = decoder.decode(Buffer.concat([Buffer.from([channel]), head, payload]));
        if (frame.kind === 'data') got[0]!.push(frame.data);
        if (frame.kind === 'error') got[1]!.push(frame.text);
      }
      assert.deepEqual(
        got.map((g) => Buffer.concat(g)),
        sent.map((s) => Buffer.concat(s)),
      );
    });
  });
});

describe('fuzz: SPDY/3 frames', () => {
  it('random and truncated input throws only PROTOCOL errors', () => {
    fuzz('spdy hostile', { rounds: 1500 }, (rng) => {
      const decoder = new SpdyDecoder();
      const input = rng.bytes(8 + rng.int(64));
      // Half the rounds start with a valid control header, to reach the control-frame path.
      if (rng.chance(2)) input.set([0x80, 0x03, 0x00, rng.int(10), rng.int(2), 0, 0, input.length % 9], 0);
      onlyTypedErrors(
        protocolError,
        () => {
          for (const piece of split(rng, input)) {
            for (const event of decoder.push(piece)) {
              if (event.kind !== 'control') continue;
              onlyTypedErrors(protocolError, () => controlStreamId(event.payload));
              assert.equal(typeof rstStatusText(event.payload), 'string');
            }
          }
        },
        input,
      );
    });
  });

  it('gives back data per stream, FINs and control frames, however the stream is split', () => {
    fuzz('spdy round trip', { rounds: 300 }, (rng) => {
      const headers = new SpdyHeaderEncoder();
      const wire: Buffer[] = [];
      const data = new Map<number, Buffer[]>();
      const expected: string[] = [];
      for (let i = 0, n = rng.int(10); i < n; i++) {
        const streamId = 1 + 2 * rng.int(4);
        switch (rng.int(3)) {
          case 0: {
            const payload = rng.bytes(rng.int(3000));
            const fin = rng.chance(3);
            wire.push(dataFrameHeader(streamId, payload.length, fin), payload);
            data.set(streamId, [...(data.get(streamId) ?? []), payload]);
            if (fin) expected.push(`fin ${streamId}`);
            break;
          }
          case 1: {
            const id = rng.int(2 ** 32);
            wire.push(pingFrame(id));
            expected.push(`control ${SpdyControl.ping} ${id}`);
            break;
          }
          default: {
            const block = headers.encode({ streamid: String(streamId), port: String(rng.int(65536)) });
            wire.push(synStreamFrame(streamId, block, rng.int(2)));
            expected.push(`control ${SpdyControl.synStream} ${streamId}`);
          }
        }
      }
      const decoder = new SpdyDecoder();
      const got = new Map<number, Buffer[]>();
      const seen: string[] = [];
      for (const piece of split(rng, Buffer.concat(wire))) {
        for (const e of decoder.push(piece) as SpdyEvent[]) {
          if (e.kind === 'data') got.set(e.streamId, [...(got.get(e.streamId) ?? []), e.data]);
          else if (e.kind === 'fin') seen.push(`fin ${e.streamId}`);
          else seen.push(`control ${e.type} ${e.payload.readUInt32BE(0) >>> 0}`);
        }
      }
      assert.deepEqual(seen, expected);
      for (const [streamId, parts] of data) {
        assert.deepEqual(Buffer.concat(got.get(streamId) ?? []), Buffer.concat(parts), `stream ${streamId}`);
      }
    });
  });
});

/** A frame as a server sends it (unmasked). */
function serverFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const n = payload.length;
  const head = Buffer.alloc(n < 126 ? 2 : n < 65536 ? 4 : 10);
  head[0] = (fin ? 0x80 : 0) | opcode;
  if (n < 126) head[1] = n;
  else if (n < 65536) {
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  return Buffer.concat([head, payload]);
}

describe('fuzz: WebSocket frames', () => {
  it('random and truncated input throws only PROTOCOL errors, holding at most one short frame', () => {
    fuzz('websocket hostile', { rounds: 400 }, (rng) => {
      const decoder = new WebSocketDecoder();
      const valid = serverFrame(rng.pick([0x0, 0x2, 0x8, 0x9, 0xa]), rng.bytes(rng.int(125)));
      onlyTypedErrors(protocolError, () => {
        for (let i = 0; i < 20; i++) {
          decoder.push(hostile(rng, valid, 64));
          assert.ok((decoder as unknown as { pending: Buffer }).pending.length <= 140);
        }
      });
    });
  });

  it('gives back binary messages, fragments, pings and the close, however the stream is split', () => {
    fuzz('websocket round trip', { rounds: 150 }, (rng) => {
      const wire: Buffer[] = [];
      const sentData: Buffer[] = [];
      const expected: string[] = [];
      for (let i = 0, n = rng.int(8); i < n; i++) {
        if (rng.chance(3)) {
          const payload = rng.bytes(rng.int(126));
          wire.push(serverFrame(0x9, payload));
          expected.push(`ping ${payload.toString('hex')}`);
          continue;
        }
        const size = rng.chance(10) ? 65536 + rng.int(1000) : rng.int(300);
        const message = rng.bytes(size);
        const cut = rng.int(size + 1);
        if (rng.chance(2)) wire.push(serverFrame(0x2, message));
        else
          wire.push(
            serverFrame(0x2, message.subarray(0, cut), false),
            serverFrame(0x0, message.subarray(cut)),
          );
        sentData.push(message);
      }
      const code = 1000 + rng.int(4000);
      wire.push(
        serverFrame(0x8, Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from('bye ✓')])),
      );
      expected.push(`close ${code} bye ✓`);
      const decoder = new WebSocketDecoder();
      const data: Buffer[] = [];
      const seen: string[] = [];
      for (const piece of split(rng, Buffer.concat(wire))) {
        for (const e of decoder.push(piece) as WebSocketEvent[]) {
          if (e.kind === 'data') data.push(e.data);
          else if (e.kind === 'ping') seen.push(`ping ${e.payload.toString('hex')}`);
          else if (e.kind === 'close') seen.push(`close ${e.code} ${e.reason}`);
        }
      }
      assert.deepEqual(seen, expected);
      assert.deepEqual(Buffer.concat(data), Buffer.concat(sentData));
    });
  });
});

describe('fuzz: stream targets and inbound connection info', () => {
  it('a target header parses to a host and a port from 1 to 65535, or to nothing, and round-trips', () => {
    fuzz('targets', { rounds: 3000 }, (rng) => {
      const text = rng.chance(2)
        ? rng.string(rng.int(30), '0123456789:[]abc.-f /')
        : formatTarget(rng.pick(['10.96.0.1', 'db.shop', 'fd00::1', '::']), rng.int(70000));
      const target = parseTarget(text);
      if (!target) return;
      assert.ok(Number.isInteger(target.port) && target.port >= 1 && target.port <= 65535, text);
      assert.deepEqual(parseTarget(formatTarget(target.host, target.port)), target, text);
    });
  });

  it('inbound info parses to ports from 1 to 65535 or to nothing, and round-trips', () => {
    fuzz('inbound info', { rounds: 3000 }, (rng) => {
      const port = () =>
        rng.chance(4) ? rng.string(1 + rng.int(6), '0123456789x-') : String(rng.int(70000));
      const headers = inboundInfoHeaders({
        clientAddress: rng.pick(['10.244.0.7', '::ffff:10.1.2.3', '', 'x']),
        clientPort: 0,
        interceptPort: 0,
        appPort: 0,
      });
      for (const name of Object.keys(headers)) if (!name.includes('address')) headers[name] = port();
      const info: InboundInfo | undefined = parseInboundInfo(headers);
      if (!info) return;
      for (const p of [info.clientPort, info.interceptPort, info.appPort]) {
        assert.ok(Number.isInteger(p) && p >= 1 && p <= 65535, JSON.stringify(headers));
      }
      assert.deepEqual(parseInboundInfo(inboundInfoHeaders(info)), info);
    });
  });
});
