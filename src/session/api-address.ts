/**
 * The API server address as seen from inside the sidecar container. A loopback
 * server (kind, minikube, a tunnel on the laptop) is reached through the host
 * gateway, with TLS still checking the name the certificate was issued for. A
 * server known by name is resolved here, on the host, and pinned with
 * `--add-host`: inside the sidecar every lookup goes to the sidecar's own DNS,
 * which needs the tunnel, which needs the API server.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

export const HOST_GATEWAY_NAME = 'host.docker.internal';

export interface ContainerApiAddress {
  server: string;
  /** Name to verify the certificate against, when the address was rewritten. */
  tlsServerName: string | undefined;
  /** `--add-host` entries the sidecar needs. */
  extraHosts: string[];
}

const loopbackNames = new Set(['localhost', '::1', '0.0.0.0']);

export async function apiAddressForContainer(
  server: string,
  tlsServerName?: string,
  resolve: (host: string) => Promise<string> = async (host) => (await lookup(host)).address,
): Promise<ContainerApiAddress> {
  const url = new URL(server);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (loopbackNames.has(host) || host.startsWith('127.')) {
    url.hostname = HOST_GATEWAY_NAME;
    return {
      server: url.toString().replace(/\/$/, ''),
      tlsServerName: tlsServerName ?? host,
      extraHosts: [`${HOST_GATEWAY_NAME}:host-gateway`],
    };
  }
  if (isIP(host)) return { server, tlsServerName, extraHosts: [] };
  return { server, tlsServerName, extraHosts: [`${host}:${await resolve(host)}`] };
}
