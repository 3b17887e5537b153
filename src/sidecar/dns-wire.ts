/**
 * The few DNS wire-format operations the sidecar needs (RFC 1035). Queries and
 * answers are relayed as raw bytes; only these cases look inside them:
 * building SERVFAIL / truncated replies from a query's id and question,
 * finding the EDNS UDP payload size, and rewriting A record addresses in
 * place (fallback mode). Working on the bytes in place keeps the cluster's
 * answer exactly as sent, compression, EDNS options and all.
 */

export const HEADER_LEN = 12;
export const TYPE_A = 1;
export const TYPE_OPT = 41;
export const RCODE_SERVFAIL = 2;
/** The largest UDP payload over IPv4; an EDNS size above it cannot be honoured. */
export const UDP_PAYLOAD_MAX = 65_507;

const FLAG_QR = 0x8000;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const OPCODE_MASK = 0x7800;

export class DnsFormatError extends Error {}

/** Offset just past the (possibly compressed) name starting at `off`. */
export function skipName(buf: Buffer, off: number): number {
  let pos = off;
  for (let labels = 0; labels < 128; labels++) {
    if (pos >= buf.length) throw new DnsFormatError('name runs past the end');
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) === 0xc0) {
      if (pos + 2 > buf.length) throw new DnsFormatError('truncated pointer');
      return pos + 2;
    }
    if ((len & 0xc0) !== 0) throw new DnsFormatError('bad label type');
    pos += 1 + len;
  }
  throw new DnsFormatError('too many labels');
}

/** Reads a name, following compression pointers; lower-cased, no trailing dot. */
export function readName(buf: Buffer, off: number): string {
  const labels: string[] = [];
  let pos = off;
  for (let hops = 0; hops < 128; hops++) {
    if (pos >= buf.length) throw new DnsFormatError('name runs past the end');
    const len = buf[pos]!;
    if (len === 0) return labels.join('.').toLowerCase();
    if ((len & 0xc0) === 0xc0) {
      if (pos + 2 > buf.length) throw new DnsFormatError('truncated pointer');
      pos = buf.readUInt16BE(pos) & 0x3fff;
      continue;
    }
    if (pos + 1 + len > buf.length) throw new DnsFormatError('label runs past the end');
    labels.push(buf.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  throw new DnsFormatError('name loop');
}

export interface DnsHeader {
  id: number;
  flags: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export function readHeader(buf: Buffer): DnsHeader {
  if (buf.length < HEADER_LEN) throw new DnsFormatError('shorter than a header');
  return {
    id: buf.readUInt16BE(0),
    flags: buf.readUInt16BE(2),
    qdcount: buf.readUInt16BE(4),
    ancount: buf.readUInt16BE(6),
    nscount: buf.readUInt16BE(8),
    arcount: buf.readUInt16BE(10),
  };
}

/** Offset just past the question section. */
export function questionEnd(buf: Buffer, header = readHeader(buf)): number {
  let pos = HEADER_LEN;
  for (let i = 0; i < header.qdcount; i++) {
    pos = skipName(buf, pos) + 4;
    if (pos > buf.length) throw new DnsFormatError('question runs past the end');
  }
  return pos;
}

export interface DnsQuestion {
  name: string;
  type: number;
  class: number;
}

/** The first question, if any (for logs and status). */
export function firstQuestion(buf: Buffer): DnsQuestion | undefined {
  const header = readHeader(buf);
  if (header.qdcount === 0) return undefined;
  const end = skipName(buf, HEADER_LEN);
  if (end + 4 > buf.length) throw new DnsFormatError('question runs past the end');
  return { name: readName(buf, HEADER_LEN), type: buf.readUInt16BE(end), class: buf.readUInt16BE(end + 2) };
}

/**
 * A reply carrying only the query's id and question: QR set, opcode and RD copied,
 * RA set, and the given rcode and TC flag. Returns undefined when the query is
 * too short to carry an id (nothing sensible can be sent back).
 */
export function emptyReply(query: Buffer, rcode: number, truncated = false): Buffer | undefined {
  if (query.length < HEADER_LEN) return undefined;
  const header = readHeader(query);
  let end = HEADER_LEN;
  let qdcount = 0;
  try {
    end = questionEnd(query, header);
    qdcount = header.qdcount;
  } catch {
    // A malformed question is left out; the id alone lets the client match the reply.
  }
  const reply = Buffer.alloc(end);
  query.copy(reply, 0, 0, end);
  const flags =
    FLAG_QR | (header.flags & (OPCODE_MASK | FLAG_RD)) | FLAG_RA | (truncated ? FLAG_TC : 0) | (rcode & 0xf);
  reply.writeUInt16BE(flags, 2);
  reply.writeUInt16BE(qdcount, 4);
  reply.writeUInt16BE(0, 6);
  reply.writeUInt16BE(0, 8);
  reply.writeUInt16BE(0, 10);
  return reply;
}

/** SERVFAIL for `query`, the answer when no tunnel can carry it. */
export function servfail(query: Buffer): Buffer | undefined {
  return emptyReply(query, RCODE_SERVFAIL);
}

export function rcodeOf(reply: Buffer): number {
  return reply.length >= HEADER_LEN ? reply.readUInt16BE(2) & 0xf : -1;
}

/** Skips `count` resource records from `pos`, calling `visit` with each record's type and rdata offset. */
function walkRecords(
  buf: Buffer,
  pos: number,
  count: number,
  visit?: (type: number, klass: number, rdata: number, rdlength: number, start: number) => void,
): number {
  let p = pos;
  for (let i = 0; i < count; i++) {
    const start = p;
    p = skipName(buf, p);
    if (p + 10 > buf.length) throw new DnsFormatError('record header runs past the end');
    const type = buf.readUInt16BE(p);
    const klass = buf.readUInt16BE(p + 2);
    const rdlength = buf.readUInt16BE(p + 8);
    const rdata = p + 10;
    if (rdata + rdlength > buf.length) throw new DnsFormatError('rdata runs past the end');
    visit?.(type, klass, rdata, rdlength, start);
    p = rdata + rdlength;
  }
  return p;
}

/** The largest UDP reply the querier accepts: its EDNS payload size, or 512. */
export function maxUdpReply(query: Buffer): number {
  try {
    const header = readHeader(query);
    let pos = questionEnd(query, header);
    pos = walkRecords(query, pos, header.ancount + header.nscount);
    let size = 512;
    walkRecords(query, pos, header.arcount, (type, klass) => {
      if (type === TYPE_OPT) size = Math.max(512, klass);
    });
    return Math.min(size, UDP_PAYLOAD_MAX);
  } catch {
    return 512;
  }
}

/** The same message with its id replaced (the querier matches replies by id). */
export function withId(message: Buffer, id: number): Buffer {
  if (message.length < 2 || message.readUInt16BE(0) === id) return message;
  const copy = Buffer.from(message);
  copy.writeUInt16BE(id, 0);
  return copy;
}

/**
 * A copy of `reply` where every IPv4 A record whose address `map` knows is
 * rewritten to the mapped address; everything else stays byte-identical.
 * Returns the original buffer when nothing changed or the message cannot be parsed.
 */
export function rewriteARecords(reply: Buffer, map: (ip: string) => string | undefined): Buffer {
  let out: Buffer | undefined;
  try {
    const header = readHeader(reply);
    const pos = questionEnd(reply, header);
    walkRecords(
      reply,
      pos,
      header.ancount + header.nscount + header.arcount,
      (type, klass, rdata, rdlength) => {
        if (type !== TYPE_A || klass !== 1 || rdlength !== 4) return;
        const ip = `${reply[rdata]}.${reply[rdata + 1]}.${reply[rdata + 2]}.${reply[rdata + 3]}`;
        const mapped = map(ip);
        if (!mapped || mapped === ip) return;
        const parts = mapped.split('.').map(Number);
        if (parts.length !== 4 || parts.some((n) => !(n >= 0 && n <= 255))) return;
        out ??= Buffer.from(reply);
        for (let i = 0; i < 4; i++) out[rdata + i] = parts[i]!;
      },
    );
  } catch {
    return reply;
  }
  return out ?? reply;
}
