/**
 * Where a browser comes in to a workload (the entry of a share link): an Ingress rule that leads to
 * one of its Services, else a LoadBalancer Service with an address, else the `kubectl port-forward`
 * command that makes one on this machine. Pure: the caller lists the objects.
 */
import type { V1Ingress, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { SHARE_QUERY } from '../tunnel/share.js';
import { DevboxError } from '../util/errors.js';

export type EntryAddress =
  | { kind: 'ingress'; url: string; service: string; ingress: string }
  | { kind: 'load-balancer'; url: string; service: string }
  /** Nothing outside the cluster reaches it: `command` (kubectl's arguments) serves `url` locally. */
  | { kind: 'port-forward'; url: string; service: string; command: string[] };

export interface EntryInput {
  /** How errors name the entry (`deploy/storefront`). */
  label: string;
  namespace: string;
  /** Labels of the entry's pods. */
  podLabels: Record<string, string>;
  services: V1Service[];
  ingresses: V1Ingress[];
  /** The Service port to use (`--entry kind/name:port`); default its HTTP port. */
  port?: number;
  /** The local port a port-forward would listen on. */
  localPort: number;
  /** kubectl flags that name the cluster (`--context c`), put into the printed command. */
  kubectlFlags?: string[];
}

export function entryAddress(input: EntryInput): EntryAddress {
  const candidates = input.services
    .filter((s) => selects(s, input.podLabels))
    .map((s) => ({ service: s, port: pickPort(s, input.port) }))
    .filter((c): c is { service: V1Service; port: V1ServicePort } => c.port !== undefined);
  if (candidates.length === 0) throw noService(input);
  for (const { service, port } of candidates) {
    const viaIngress = ingressUrl(input.ingresses, service.metadata!.name!, port);
    if (viaIngress) return { kind: 'ingress', ...viaIngress, service: service.metadata!.name! };
  }
  for (const { service, port } of candidates) {
    const lb = service.status?.loadBalancer?.ingress?.[0];
    const host = lb?.ip ?? lb?.hostname;
    if (service.spec?.type === 'LoadBalancer' && host) {
      return {
        kind: 'load-balancer',
        url: httpUrl('http', host, port.port, '/'),
        service: service.metadata!.name!,
      };
    }
  }
  const { service, port } = candidates[0]!;
  const name = service.metadata!.name!;
  return {
    kind: 'port-forward',
    url: `http://localhost:${input.localPort}/`,
    service: name,
    command: [
      ...(input.kubectlFlags ?? []),
      '-n',
      input.namespace,
      'port-forward',
      `svc/${name}`,
      `${input.localPort}:${port.port}`,
    ],
  };
}

function selects(service: V1Service, podLabels: Record<string, string>): boolean {
  const selector = service.spec?.selector;
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => podLabels[k] === v);
}

/** The port asked for, else one that speaks HTTP by name or appProtocol, else the first TCP one. */
function pickPort(service: V1Service, wanted: number | undefined): V1ServicePort | undefined {
  const ports = (service.spec?.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP');
  if (wanted !== undefined) return ports.find((p) => p.port === wanted);
  const http = ports.find((p) => /^https?$|^http-/.test(p.name ?? '') || p.appProtocol === 'http');
  return http ?? ports[0];
}

function ingressUrl(
  ingresses: V1Ingress[],
  serviceName: string,
  port: V1ServicePort,
): { url: string; ingress: string } | undefined {
  for (const ingress of ingresses) {
    const tlsHosts = (ingress.spec?.tls ?? []).flatMap((t) => t.hosts ?? []);
    const lb = ingress.status?.loadBalancer?.ingress?.[0];
    for (const rule of ingress.spec?.rules ?? []) {
      const host = rule.host ?? lb?.ip ?? lb?.hostname;
      if (!host || host.includes('*')) continue;
      for (const path of rule.http?.paths ?? []) {
        const backend = path.backend.service;
        if (backend?.name !== serviceName) continue;
        if (
          backend.port?.number !== undefined
            ? backend.port.number !== port.port
            : backend.port?.name !== port.name
        ) {
          continue;
        }
        const scheme = rule.host && tlsHosts.includes(rule.host) ? 'https' : 'http';
        const base = path.pathType === 'Exact' ? path.path : (path.path ?? '/').replace(/\/*$/, '/');
        return { url: httpUrl(scheme, host, undefined, base ?? '/'), ingress: ingress.metadata!.name! };
      }
    }
  }
  return undefined;
}

function httpUrl(scheme: 'http' | 'https', host: string, port: number | undefined, path: string): string {
  const name = host.includes(':') ? `[${host}]` : host;
  const shown = port === undefined || (scheme === 'http' && port === 80) ? '' : `:${port}`;
  return `${scheme}://${name}${shown}${path.startsWith('/') ? path : `/${path}`}`;
}

function noService(input: EntryInput): DevboxError {
  const wanted = input.port === undefined ? '' : ` on port ${input.port}`;
  return new DevboxError(
    'NOT_FOUND',
    `no Service of ${input.namespace} sends TCP traffic to ${input.label}${wanted}: a browser cannot reach it`,
    {
      hint:
        input.port === undefined
          ? 'give the entry a Service, or name another entry with --entry kind/name[:port]'
          : `name a port of one of its Services with --entry ${input.label}:<port>, or leave :port out`,
    },
  );
}

/** The link a browser opens: the entry's URL with the share key as the one query parameter devbox reads. */
export function shareLink(entryUrl: string, key: string): string {
  return `${entryUrl}${entryUrl.includes('?') ? '&' : '?'}${SHARE_QUERY}=${key}`;
}
