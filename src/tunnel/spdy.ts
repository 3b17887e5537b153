import { DevboxError } from '../util/errors.js';

/**
 * The subset of SPDY/3 framing that Kubernetes port-forward speaks after an `Upgrade: SPDY/3.1`.
 *
 * Every frame has an 8-byte header. A data frame: stream id (31 bits, top bit 0), flags (8 bits,
 * FIN = 1), length (24 bits), payload. A control frame: top bit 1, version (15 bits, 3), type (16
 * bits), flags, length, payload. Header blocks are zlib streams, one per connection and direction;
 * ours use stored (uncompressed) deflate blocks, so no dictionary is needed, and we never decode
 * the server's (the port-forward needs none of its reply headers). The servers in use
 * (moby/spdystream) do no flow control: WINDOW_UPDATE is neither sent nor honoured; TCP paces.
 */
export const SPDY_VERSION = 3;

export const SpdyControl = {
  synStream: 1,
  synReply: 2,
  rstStream: 3,
  settings: 4,
  ping: 6,
  goAway: 7,
  headers: 8,
  windowUpdate: 9,
} as const;

export const SPDY_FLAG_FIN = 0x01;
/** Largest payload of one frame (24-bit length). */
export const SPDY_FRAME_PAYLOAD_MAX = 0xffffff;
/** Largest control frame accepted; real ones are a few hundred bytes. */
const CONTROL_PAYLOAD_MAX = 64 * 1024;

/** One decoded piece of the server's byte stream. */
export type SpdyEvent =
  /** Payload bytes of a data frame, delivered as they arrive (a frame may come in several). */
  | { kind: 'data'; streamId: number; data: Buffer }
  /** The end of a data frame that carried FIN. */
  | { kind: 'fin'; streamId: number }
  | { kind: 'control'; type: number; flags: number; payload: Buffer };

/**
 * Splits the server's bytes into {@link SpdyEvent}s. Data payloads are passed on as slices of the
 * input without waiting for the whole frame, so the decoder holds at most one 8-byte header or
 * one control frame. Throws a PROTOCOL DevboxError on a wrong version or an oversize control frame.
 */
export class SpdyDecoder {
  private header = Buffer.alloc(8);
  private headerBytes = 0;
  /** Data frame in progress: bytes of payload still to come. */
  private dataLeft = 0;
  private dataStream = 0;
  private dataFin = false;
  /** Control frame in progress. */
  private control: { type: number; flags: number; payload: Buffer; filled: number } | undefined;

  push(chunk: Buffer): SpdyEvent[] {
    const events: SpdyEvent[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      if (this.dataLeft > 0) {
        const take = Math.min(this.dataLeft, chunk.length - offset);
        events.push({ kind: 'data', streamId: this.dataStream, data: chunk.subarray(offset, offset + take) });
        offset += take;
        this.dataLeft -= take;
        if (this.dataLeft === 0 && this.dataFin) events.push({ kind: 'fin', streamId: this.dataStream });
        continue;
      }
      if (this.control) {
        const c = this.control;
        const take = Math.min(c.payload.length - c.filled, chunk.length - offset);
        chunk.copy(c.payload, c.filled, offset, offset + take);
        c.filled += take;
        offset += take;
        if (c.filled === c.payload.length) {
          events.push({ kind: 'control', type: c.type, flags: c.flags, payload: c.payload });
          this.control = undefined;
        }
        continue;
      }
      const take = Math.min(8 - this.headerBytes, chunk.length - offset);
      chunk.copy(this.header, this.headerBytes, offset, offset + take);
      this.headerBytes += take;
      offset += take;
      if (this.headerBytes < 8) break;
      this.headerBytes = 0;
      this.startFrame(events);
    }
    return events;
  }

  private startFrame(events: SpdyEvent[]): void {
    const h = this.header;
    const flags = h[4]!;
    const length = h.readUIntBE(5, 3);
    if ((h[0]! & 0x80) === 0) {
      const streamId = h.readUInt32BE(0) & 0x7fffffff;
      const fin = (flags & SPDY_FLAG_FIN) !== 0;
      if (length === 0) {
        if (fin) events.push({ kind: 'fin', streamId });
        return;
      }
      this.dataStream = streamId;
      this.dataLeft = length;
      this.dataFin = fin;
      return;
    }
    const version = h.readUInt16BE(0) & 0x7fff;
    if (version !== SPDY_VERSION) {
      throw new DevboxError(
        'PROTOCOL',
        `spdy: control frame of version ${version}, expected ${SPDY_VERSION}`,
      );
    }
    if (length > CONTROL_PAYLOAD_MAX) {
      throw new DevboxError(
        'PROTOCOL',
        `spdy: control frame of ${length} bytes exceeds ${CONTROL_PAYLOAD_MAX}`,
      );
    }
    const type = h.readUInt16BE(2);
    if (length === 0) {
      events.push({ kind: 'control', type, flags, payload: Buffer.alloc(0) });
      return;
    }
    this.control = { type, flags, payload: Buffer.allocUnsafe(length), filled: 0 };
  }
}

/** The 8-byte header of a data frame of `length` bytes on `streamId`. */
export function dataFrameHeader(streamId: number, length: number, fin = false): Buffer {
  if (length > SPDY_FRAME_PAYLOAD_MAX) throw new RangeError(`spdy data frame of ${length} bytes`);
  const h = Buffer.allocUnsafe(8);
  h.writeUInt32BE(streamId & 0x7fffffff, 0);
  h[4] = fin ? SPDY_FLAG_FIN : 0;
  h.writeUIntBE(length, 5, 3);
  return h;
}

function controlFrame(type: number, flags: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(8 + payload.length);
  frame.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  frame.writeUInt16BE(type, 2);
  frame[4] = flags;
  frame.writeUIntBE(payload.length, 5, 3);
  payload.copy(frame, 8);
  return frame;
}

/**
 * Encodes header blocks of one connection: a zlib stream whose first block carries the zlib
 * header, each block made of stored deflate blocks and ending like a sync flush.
 */
export class SpdyHeaderEncoder {
  private started = false;

  encode(headers: Record<string, string>): Buffer {
    const entries = Object.entries(headers);
    const parts: Buffer[] = [u32(entries.length)];
    for (const [name, value] of entries) {
      const n = Buffer.from(name.toLowerCase(), 'utf8');
      const v = Buffer.from(value, 'utf8');
      parts.push(u32(n.length), n, u32(v.length), v);
    }
    const raw = Buffer.concat(parts);
    const out: Buffer[] = [];
    if (!this.started) {
      // CMF: deflate, 32 KiB window; FLG: no dictionary, check bits making CMF*256+FLG a multiple of 31.
      out.push(Buffer.from([0x78, 0x01]));
      this.started = true;
    }
    for (let offset = 0; offset < raw.length; offset += 0xffff) {
      const piece = raw.subarray(offset, offset + 0xffff);
      const head = Buffer.allocUnsafe(5);
      head[0] = 0; // BFINAL = 0, BTYPE = 00 (stored): the stream goes on with the next block
      head.writeUInt16LE(piece.length, 1);
      head.writeUInt16LE(~piece.length & 0xffff, 3);
      out.push(head, piece);
    }
    // An empty stored block, as a zlib sync flush writes: decoders that look for the next block
    // header after the data find it in this frame instead of running into the next one.
    out.push(Buffer.from([0x00, 0x00, 0x00, 0xff, 0xff]));
    return Buffer.concat(out);
  }
}

function u32(n: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** SYN_STREAM opening `streamId` with an already encoded header block. */
export function synStreamFrame(streamId: number, headerBlock: Buffer, flags = 0): Buffer {
  const payload = Buffer.allocUnsafe(10 + headerBlock.length);
  payload.writeUInt32BE(streamId & 0x7fffffff, 0);
  payload.writeUInt32BE(0, 4); // associated stream
  payload.writeUInt16BE(0, 8); // priority 0, slot 0
  headerBlock.copy(payload, 10);
  return controlFrame(SpdyControl.synStream, flags, payload);
}

export function pingFrame(id: number): Buffer {
  return controlFrame(SpdyControl.ping, 0, u32(id >>> 0));
}

/** The stream id a SYN_REPLY, RST_STREAM, HEADERS or WINDOW_UPDATE frame is about. */
export function controlStreamId(payload: Buffer): number {
  if (payload.length < 4) throw new DevboxError('PROTOCOL', 'spdy: truncated control frame');
  return payload.readUInt32BE(0) & 0x7fffffff;
}

/** RST_STREAM status codes (SPDY/3 §2.6.3), for error messages. */
export function rstStatusText(payload: Buffer): string {
  const code = payload.length >= 8 ? payload.readUInt32BE(4) : 0;
  const names: Record<number, string> = {
    1: 'PROTOCOL_ERROR',
    2: 'INVALID_STREAM',
    3: 'REFUSED_STREAM',
    4: 'UNSUPPORTED_VERSION',
    5: 'CANCEL',
    6: 'INTERNAL_ERROR',
    7: 'FLOW_CONTROL_ERROR',
    8: 'STREAM_IN_USE',
    9: 'STREAM_ALREADY_CLOSED',
    11: 'FRAME_TOO_LARGE',
  };
  return names[code] ?? `status ${code}`;
}
