/**
 * The API server address as seen from inside a Docker container. A loopback
 * server (kind, minikube, a tunnel on the laptop) is reached through the host
 * gateway; TLS still checks the name the certificate was issued for.
 */
export const HOST_GATEWAY_NAME = 'host.docker.internal';

export interface ContainerApiAddress {
  server: string;
  /** Name to verify the certificate against, when the address was rewritten. */
  tlsServerName: string | undefined;
  /** `--add-host` entries the sidecar needs. */
  extraHosts: string[];
  rewritten: boolean;
}

const loopbackHosts = new Set(['127.0.0.1', 'localhost', '::1', '[::1]', '0.0.0.0']);

export function apiAddressForContainer(server: string, tlsServerName?: string): ContainerApiAddress {
  const url = new URL(server);
  const host = url.hostname;
  if (!loopbackHosts.has(host) && !host.startsWith('127.')) {
    return { server, tlsServerName, extraHosts: [], rewritten: false };
  }
  url.hostname = HOST_GATEWAY_NAME;
  return {
    server: url.toString().replace(/\/$/, ''),
    tlsServerName: tlsServerName ?? host.replace(/^\[|\]$/g, ''),
    extraHosts: [`${HOST_GATEWAY_NAME}:host-gateway`],
    rewritten: true,
  };
}
