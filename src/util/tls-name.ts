import { isIP } from 'node:net';
import tls from 'node:tls';

/**
 * TLS options that verify the server's certificate against `name` (when the connection goes to
 * another address, e.g. the Docker host gateway for a loopback API server) and send SNI only for
 * host names: RFC 6066 forbids IP addresses there, and Node warns about them.
 */
export function verifyServerAs(
  name: string | undefined,
): Pick<tls.ConnectionOptions, 'servername' | 'checkServerIdentity'> {
  if (!name) return {};
  return {
    servername: isIP(name) ? '' : name,
    checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
  };
}
