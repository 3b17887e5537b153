/**
 * Filters see HTTP/1.1 and cleartext HTTP/2 only; anything else on a filtered port goes to the pod's
 * app. Where a Service port declares another protocol (by appProtocol, by name as Kubernetes and
 * Istio conventions have it, or by being UDP/SCTP), `up` says so before the developer wonders why
 * none of its traffic arrives.
 */
import type { V1Container, V1Service, V1ServicePort } from '@kubernetes/client-node';
import { isFiltered, type SessionRoute } from '../../tunnel/route.js';

const HTTP = /^(http|http2|h2c|grpc|grpc-web|ws|websocket|kubernetes\.io\/h2c|kubernetes\.io\/ws)$/i;
const HTTP_NAME = /^(http|http2|h2c|grpc|grpc-web|ws)(-|$)/i;
const OTHER_NAME =
  /^(https|tls|tcp|udp|grpcs|wss|postgres|postgresql|mysql|redis|mongo|mongodb|amqp|kafka|memcached|zookeeper)(-|$)/i;

/** One note per Service port reaching the app that declares a protocol the filter cannot see. */
export function portsFiltersMiss(route: SessionRoute, services: V1Service[], app: V1Container): string[] {
  if (!isFiltered(route)) return [];
  const notes: string[] = [];
  for (const service of services) {
    for (const port of service.spec?.ports ?? []) {
      const declared = nonHttpDeclaration(port, containerPortName(port, app));
      if (!declared) continue;
      notes.push(
        `filters apply to HTTP/1.1 and cleartext HTTP/2 only: port ${port.port} of service/${service.metadata?.name} ${declared}, so its traffic goes to the pod's app`,
      );
    }
  }
  return notes;
}

function containerPortName(port: V1ServicePort, app: V1Container): string | undefined {
  const target = port.targetPort ?? port.port;
  if (typeof target === 'string') return target;
  return app.ports?.find((p) => p.containerPort === target)?.name;
}

function nonHttpDeclaration(port: V1ServicePort, containerPort: string | undefined): string | undefined {
  const protocol = port.protocol ?? 'TCP';
  if (protocol !== 'TCP') return `is ${protocol}`;
  if (port.appProtocol)
    return HTTP.test(port.appProtocol) ? undefined : `declares appProtocol ${port.appProtocol}`;
  for (const name of [port.name, containerPort]) {
    if (!name || HTTP_NAME.test(name)) continue;
    if (OTHER_NAME.test(name)) return `is named ${name}`;
  }
  return undefined;
}
