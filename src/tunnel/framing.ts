import { DevboxError } from '../util/errors.js';

/** Largest payload a 2-byte length prefix can carry. */
export const FRAME_PAYLOAD_MAX = 0xffff;

/** Prefixes one payload (a UDP datagram) with its length as a 2-byte big-endian integer. */
export function encodeFrame(payload: Uint8Array): Buffer {
  if (payload.length > FRAME_PAYLOAD_MAX) {
    throw new DevboxError(
      'BAD_INPUT',
      `frame payload of ${payload.length} bytes exceeds ${FRAME_PAYLOAD_MAX}`,
    );
  }
  const out = Buffer.allocUnsafe(2 + payload.length);
  out.writeUInt16BE(payload.length, 0);
  out.set(payload, 2);
  return out;
}

/**
 * Splits a byte stream of length-prefixed frames back into payloads. It holds at most one
 * incomplete frame, so its buffer never exceeds 2 + `maxPayload` bytes; a prefix announcing more
 * than `maxPayload` is a protocol error.
 */
export class LengthPrefixDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxPayload: number = FRAME_PAYLOAD_MAX) {}

  /** Bytes held waiting for the rest of a frame. */
  get buffered(): number {
    return this.pendingBytes;
  }

  /** Feeds a chunk; returns the payloads it completes. Throws a PROTOCOL DevboxError on an oversize prefix. */
  push(chunk: Uint8Array): Buffer[] {
    let buf: Buffer = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    if (this.pendingBytes > 0) {
      this.pending.push(buf);
      buf = Buffer.concat(this.pending, this.pendingBytes + buf.length);
      this.pending = [];
      this.pendingBytes = 0;
    }
    const out: Buffer[] = [];
    let offset = 0;
    while (buf.length - offset >= 2) {
      const size = buf.readUInt16BE(offset);
      if (size > this.maxPayload) {
        throw new DevboxError('PROTOCOL', `frame of ${size} bytes exceeds the limit of ${this.maxPayload}`);
      }
      if (buf.length - offset - 2 < size) break;
      out.push(buf.subarray(offset + 2, offset + 2 + size));
      offset += 2 + size;
    }
    if (offset < buf.length) {
      // Copy so that a small remainder does not pin a large chunk.
      const rest = Buffer.from(buf.subarray(offset));
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
    return out;
  }
}
