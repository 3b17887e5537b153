/**
 * Docker-link style variables the kubelet gives every container for Services:
 * `FOO_SERVICE_HOST`, `FOO_SERVICE_PORT[_NAME]`, `FOO_PORT`, `FOO_PORT_80_TCP[_PROTO|_PORT|_ADDR]`.
 */
import type { V1Service } from '@kubernetes/client-node';

export interface NameValue {
  name: string;
  value: string;
}

/** The `kubernetes` Service in `default`, whose variables every pod gets. */
export const MASTER_SERVICE = { namespace: 'default', name: 'kubernetes' } as const;

/**
 * The master Service as a pod's env describes it (KUBERNETES_SERVICE_HOST and _PORT): its
 * ClusterIP and its one port, named `https` as the API server names it.
 */
export function masterServiceAt(address: { host: string; port: number }): V1Service {
  return {
    metadata: { ...MASTER_SERVICE },
    spec: {
      clusterIP: address.host,
      clusterIPs: [address.host],
      ports: [{ name: 'https', port: address.port, protocol: 'TCP' }],
    },
  };
}

/** True when the Service has a ClusterIP (not headless, not ExternalName). */
export function hasClusterIP(service: V1Service): boolean {
  const ip = service.spec?.clusterIP;
  return ip !== undefined && ip !== '' && ip !== 'None';
}

function envName(serviceOrPortName: string): string {
  return serviceOrPortName.replaceAll('-', '_').toUpperCase();
}

function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The variables for the given Services, in the kubelet's per-Service order. */
export function serviceLinkVariables(services: readonly V1Service[]): NameValue[] {
  const out: NameValue[] = [];
  for (const service of services) {
    const ports = service.spec?.ports ?? [];
    if (!hasClusterIP(service) || ports.length === 0) continue;
    const ip = service.spec?.clusterIP as string;
    const prefix = envName(service.metadata?.name ?? '');
    out.push({ name: `${prefix}_SERVICE_HOST`, value: ip });
    out.push({ name: `${prefix}_SERVICE_PORT`, value: String(ports[0]?.port) });
    for (const p of ports) {
      if (p.name) out.push({ name: `${prefix}_SERVICE_PORT_${envName(p.name)}`, value: String(p.port) });
    }
    ports.forEach((p, i) => {
      const protocol = p.protocol || 'TCP';
      const url = `${protocol.toLowerCase()}://${joinHostPort(ip, p.port)}`;
      if (i === 0) out.push({ name: `${prefix}_PORT`, value: url });
      const portPrefix = `${prefix}_PORT_${p.port}_${protocol.toUpperCase()}`;
      out.push({ name: portPrefix, value: url });
      out.push({ name: `${portPrefix}_PROTO`, value: protocol.toLowerCase() });
      out.push({ name: `${portPrefix}_PORT`, value: String(p.port) });
      out.push({ name: `${portPrefix}_ADDR`, value: ip });
    });
  }
  return out;
}

/**
 * The Services whose variables a pod in `namespace` sees: the master Service always,
 * and the namespace's own Services when `enableServiceLinks` is not false. As in the
 * kubelet, a Service named `kubernetes` in the pod's namespace replaces the master one.
 * Services are ordered by name (the kubelet's order is a Go map's, i.e. random).
 */
export function servicesVisibleToPod(
  namespace: string,
  enableServiceLinks: boolean,
  namespaceServices: readonly V1Service[],
  master: V1Service | undefined,
): V1Service[] {
  const byName = new Map<string, V1Service>();
  if (master && hasClusterIP(master)) byName.set(MASTER_SERVICE.name, master);
  if (enableServiceLinks) {
    for (const s of namespaceServices) {
      const name = s.metadata?.name;
      if (!name || !hasClusterIP(s)) continue;
      if (namespace === MASTER_SERVICE.namespace && name === MASTER_SERVICE.name && master) continue;
      byName.set(name, s);
    }
  }
  return [...byName.keys()].sort().map((k) => byName.get(k) as V1Service);
}
