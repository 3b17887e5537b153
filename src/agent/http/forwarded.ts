import type { IncomingHttpHeaders } from 'node:http';

/**
 * Adds the caller's address to a request's headers (lower-case names), as a reverse proxy does:
 * appended to `x-forwarded-for`, and a `for=` element appended to `forwarded` (RFC 7239). Without
 * them every request would reach the app or a session from the agent's own address.
 */
export function addForwarded(headers: IncomingHttpHeaders, clientAddress: string): void {
  if (!clientAddress) return;
  const xff = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = xff ? `${xff}, ${clientAddress}` : clientAddress;
  const element = `for=${forwardedNode(clientAddress)}`;
  const forwarded = headers.forwarded;
  headers.forwarded = forwarded ? `${forwarded}, ${element}` : element;
}

/** IPv6 addresses are quoted and bracketed in `Forwarded`. */
function forwardedNode(address: string): string {
  return address.includes(':') ? `"[${address}]"` : address;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`. */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1); never forwarded. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade'];

/** Removes hop-by-hop headers, including those named in `Connection`; keeps `te: trailers` (gRPC). */
export function stripHopByHop(headers: IncomingHttpHeaders): void {
  const connection = headers.connection;
  if (connection) {
    for (const name of String(connection).split(',')) {
      const n = name.trim().toLowerCase();
      if (n) delete headers[n];
    }
  }
  const te = headers.te;
  for (const name of HOP_BY_HOP) delete headers[name];
  if (typeof te === 'string' && /(^|,)\s*trailers\s*(,|$)/i.test(te)) headers.te = 'trailers';
}
