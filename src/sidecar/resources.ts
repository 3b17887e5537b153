/**
 * The three collections the sidecar watches, trimmed to the fields it uses:
 * agent pods (to open tunnels), Services (ClusterIPs and ports) and
 * EndpointSlices (pod IPs behind headless Services).
 */
import type { KubeObject } from '../kube/api/index.js';

export interface AgentPod {
  name: string;
  uid: string;
  ip: string;
  /** Running, not being deleted, and running the agent container, which is ready. */
  ready: boolean;
}

export type PortProtocol = 'TCP' | 'UDP';

export interface ServicePort {
  name: string;
  port: number;
  protocol: PortProtocol;
}

export interface ServiceInfo {
  name: string;
  /** Empty when the API object did not say (the sidecar's own namespace then). */
  namespace: string;
  /** All cluster IPs (dual-stack services have two); empty for headless and ExternalName. */
  clusterIPs: string[];
  headless: boolean;
  ports: ServicePort[];
}

export interface EndpointSliceInfo {
  name: string;
  namespace: string;
  /** Owning Service, from the `kubernetes.io/service-name` label. */
  service: string;
  addressType: string;
  addresses: string[];
  ports: ServicePort[];
}

export const paths = {
  pods: (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/pods`,
  services: (ns: string) => `/api/v1/namespaces/${encodeURIComponent(ns)}/services`,
  endpointSlices: (ns: string) =>
    `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(ns)}/endpointslices`,
  allServices: () => '/api/v1/services',
  allEndpointSlices: () => '/apis/discovery.k8s.io/v1/endpointslices',
};

/** The fields read from the API objects (all optional: the API may omit any of them). */
interface RawMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
}
interface RawPort {
  name?: string;
  port?: number;
  protocol?: string;
}
interface RawPod {
  metadata?: RawMeta;
  spec?: { containers?: { name?: string }[] };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type?: string; status?: string }[];
    containerStatuses?: { name?: string; ready?: boolean }[];
  };
}
interface RawService {
  metadata?: RawMeta;
  spec?: { type?: string; clusterIP?: string; clusterIPs?: string[]; ports?: RawPort[] };
}
interface RawEndpointSlice {
  metadata?: RawMeta;
  addressType?: string;
  endpoints?: { addresses?: string[] }[];
  ports?: RawPort[];
}

/**
 * A pod of the watched selector, ready to be dialed only when it runs the container named
 * `agentContainer` and that container is ready: any pod with the workload's labels matches the
 * selector, and a pod without the agent has no business on the tunnel port (the session proof keeps
 * the token from one that pretends, see tunnel/session-proof.ts).
 */
export function toAgentPod(obj: KubeObject, agentContainer = 'devbox-agent'): AgentPod {
  const o = obj as RawPod;
  const status = o.status ?? {};
  const runsAgent = (o.spec?.containers ?? []).some((c) => c.name === agentContainer);
  const agent = (status.containerStatuses ?? []).find((c) => c.name === agentContainer);
  return {
    name: o.metadata?.name ?? '',
    uid: o.metadata?.uid ?? '',
    ip: status.podIP ?? '',
    ready:
      status.phase === 'Running' &&
      !o.metadata?.deletionTimestamp &&
      Boolean(status.podIP) &&
      runsAgent &&
      agent?.ready === true,
  };
}

function toPorts(list: RawPort[] | undefined): ServicePort[] {
  const out: ServicePort[] = [];
  for (const p of list ?? []) {
    const protocol = p.protocol ?? 'TCP';
    if ((protocol === 'TCP' || protocol === 'UDP') && typeof p.port === 'number') {
      out.push({ name: p.name ?? '', port: p.port, protocol });
    }
  }
  return out;
}

export function toService(obj: KubeObject): ServiceInfo {
  const o = obj as RawService;
  const spec = o.spec ?? {};
  const headless = spec.clusterIP === 'None';
  const ips: string[] =
    spec.type === 'ExternalName' || headless
      ? []
      : (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : []));
  return {
    name: o.metadata?.name ?? '',
    namespace: o.metadata?.namespace ?? '',
    clusterIPs: ips.filter((ip) => ip && ip !== 'None'),
    headless,
    ports: toPorts(spec.ports),
  };
}

export function toEndpointSlice(obj: KubeObject): EndpointSliceInfo {
  const o = obj as RawEndpointSlice;
  const addresses: string[] = [];
  for (const ep of o.endpoints ?? []) {
    // Not-ready endpoints still get listeners: StatefulSet pods are resolvable (publishNotReadyAddresses) early.
    for (const a of ep.addresses ?? []) addresses.push(a);
  }
  return {
    name: o.metadata?.name ?? '',
    namespace: o.metadata?.namespace ?? '',
    service: o.metadata?.labels?.['kubernetes.io/service-name'] ?? '',
    addressType: o.addressType ?? 'IPv4',
    addresses,
    ports: toPorts(o.ports),
  };
}
