/**
 * DNS messages for tests, built and read with `dns-packet`: an encoder and a
 * decoder written independently of the sidecar's own wire code, so a test
 * never checks that code's output with that code.
 */
import dnsPacket from 'dns-packet';

/** A decoded message; `dns-packet` also sets `rcode` and `opcode`, which its typings leave out. */
export type DnsMessage = dnsPacket.DecodedPacket & { rcode: string; opcode: string };

export type QueryType = 'A' | 'AAAA' | 'CNAME' | 'SRV' | 'TXT' | 'PTR' | 'MX';

/** A query for `name`, with RD set unless `recursionDesired` is false. */
export function buildQuery(id: number, name: string, type: QueryType = 'A', recursionDesired = true): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: recursionDesired ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ name: name.replace(/\.$/, ''), type, class: 'IN' }],
  });
}

const RCODES = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3 } as const;

/** An answer to `query` with the given A records (for fake relays). */
export function buildAReply(
  query: Buffer,
  addresses: string[],
  ttl = 5,
  rcode: keyof typeof RCODES = 'NOERROR',
): Buffer {
  const q = decodeDns(query);
  const name = q.questions?.[0]?.name ?? '';
  return dnsPacket.encode({
    type: 'response',
    id: q.id ?? 0,
    flags: (q.flags ?? 0) | dnsPacket.RECURSION_AVAILABLE | RCODES[rcode],
    questions: q.questions ?? [],
    answers: addresses.map((data) => ({ type: 'A' as const, class: 'IN' as const, name, ttl, data })),
  });
}

export function decodeDns(message: Buffer): DnsMessage {
  return dnsPacket.decode(message) as DnsMessage;
}

/** The addresses of the A records in the answer section. */
export function aRecords(message: Buffer): string[] {
  return (decodeDns(message).answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : []));
}

/** The first question's name (lower-cased, no trailing dot), type name and class name. */
export function questionOf(message: Buffer): { name: string; type: string; class: string } | undefined {
  const q = decodeDns(message).questions?.[0];
  return q && { name: q.name.toLowerCase(), type: q.type, class: q.class ?? 'IN' };
}

/**
 * An answer summarised for comparison: rcode name and sorted `name TYPE data` lines
 * (TTLs left out; SRV as `priority weight port target`, AAAA and unknown types as hex).
 */
export function summarise(message: Buffer): { rcode: string; answers: string[] } {
  const m = decodeDns(message);
  const answers = (m.answers ?? []).map((a) => `${a.name.toLowerCase()} ${a.type} ${recordData(a)}`);
  return { rcode: m.rcode, answers: answers.sort() };
}

function recordData(a: dnsPacket.Answer): string {
  switch (a.type) {
    case 'A':
    case 'AAAA':
    case 'CNAME':
    case 'PTR':
      return a.data.toLowerCase();
    case 'SRV':
      return `${a.data.priority} ${a.data.weight} ${a.data.port} ${a.data.target.toLowerCase()}`;
    default:
      return 'data' in a && Buffer.isBuffer(a.data) ? a.data.toString('hex') : JSON.stringify(a);
  }
}
