/**
 * The W3C `baggage` header (https://www.w3.org/TR/baggage/): comma-separated members
 * `key=value` with optional `;property` parts, whitespace allowed around each. Values are
 * percent-encoded. Several `baggage` headers are one list.
 */

/** What a member's key may hold (the RFC 7230 token characters). */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

type HeaderValue = string | string[] | undefined;

/** The members in order, trimmed, with empty ones dropped. */
export function baggageMembers(header: HeaderValue): string[] {
  const lists = header === undefined ? [] : Array.isArray(header) ? header : [header];
  return lists
    .flatMap((list) => list.split(','))
    .map((m) => m.trim())
    .filter((m) => m !== '');
}

function memberKey(member: string): string | undefined {
  const eq = member.indexOf('=');
  if (eq < 0) return undefined;
  const key = member.slice(0, eq).trim();
  return TOKEN.test(key) ? key : undefined;
}

/** The decoded value of the first member named `key`; undefined when there is none or it is not valid percent-encoding. */
export function baggageValue(header: HeaderValue, key: string): string | undefined {
  for (const member of baggageMembers(header)) {
    if (memberKey(member) !== key) continue;
    const raw = member
      .slice(member.indexOf('=') + 1)
      .split(';')[0]!
      .trim();
    try {
      return decodeURIComponent(raw);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * One header with `key=value` first (so that a receiver that cuts a long list short keeps it) and
 * every other member as it came; members already named `key` are dropped. `value` must need no
 * percent-encoding (token characters).
 */
export function withBaggageMember(header: HeaderValue, key: string, value: string): string {
  const others = baggageMembers(header).filter((m) => memberKey(m) !== key);
  return [`${key}=${value}`, ...others].join(', ');
}
