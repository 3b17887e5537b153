import { DevboxError } from '../util/errors.js';
import { CONTROL_LINE_MAX, type ControlMessage } from './protocol.js';

/** Serialises one control message as a JSON line. */
export function encodeControl(message: ControlMessage): Buffer {
  return Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');
}

/**
 * Splits the session stream into control messages. Holds at most `maxLine` bytes of an incomplete
 * line; a longer line, a line that is not JSON, or JSON that is not an object with a string `type`
 * is a PROTOCOL DevboxError, after which the decoder must not be used again.
 */
export class ControlDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLine: number = CONTROL_LINE_MAX) {}

  get buffered(): number {
    return this.pendingBytes;
  }

  push(chunk: Uint8Array): ControlMessage[] {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    const out: ControlMessage[] = [];
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(0x0a, start);
      if (nl < 0) break;
      const piece = buf.subarray(start, nl);
      const lineBytes = this.pendingBytes + piece.length;
      if (lineBytes > this.maxLine) throw this.tooLong(lineBytes);
      const line = this.pendingBytes > 0 ? Buffer.concat([...this.pending, piece], lineBytes) : piece;
      this.pending = [];
      this.pendingBytes = 0;
      start = nl + 1;
      if (line.length === 0) continue;
      out.push(parseControlLine(line));
    }
    if (start < buf.length) {
      const rest = buf.subarray(start);
      if (this.pendingBytes + rest.length > this.maxLine) throw this.tooLong(this.pendingBytes + rest.length);
      this.pending.push(Buffer.from(rest));
      this.pendingBytes += rest.length;
    }
    return out;
  }

  private tooLong(bytes: number): DevboxError {
    return new DevboxError('PROTOCOL', `control line of ${bytes} bytes exceeds the limit of ${this.maxLine}`);
  }
}

function parseControlLine(line: Buffer): ControlMessage {
  let value: unknown;
  try {
    value = JSON.parse(line.toString('utf8'));
  } catch (err) {
    throw new DevboxError('PROTOCOL', 'control line is not JSON', { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new DevboxError('PROTOCOL', 'control message is not a JSON object');
  }
  if (typeof (value as { type?: unknown }).type !== 'string') {
    throw new DevboxError('PROTOCOL', 'control message has no string "type"');
  }
  return value as ControlMessage;
}
