import type { V1ConfigMap, V1Container, V1Secret, V1Service } from '@kubernetes/client-node';
import type { EnvLookup } from '../../../src/kube/env/resolve.js';
import type { Workload } from '../../../src/kube/workload.js';

/** A Service with a ClusterIP and ports, as the API returns it. */
export function service(
  namespace: string,
  name: string,
  clusterIP: string,
  ports: { port: number; name?: string; protocol?: string; targetPort?: number | string }[],
  selector?: Record<string, string>,
): V1Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { namespace, name, resourceVersion: '1', uid: `uid-${name}` },
    spec: {
      clusterIP,
      clusterIPs: clusterIP === 'None' || clusterIP === '' ? undefined : [clusterIP],
      type: 'ClusterIP',
      selector,
      ports: ports.map((p) => ({ protocol: 'TCP', targetPort: p.port, ...p })),
      sessionAffinity: 'None',
    },
  };
}

export interface FakeCluster {
  configMaps?: Record<string, Record<string, string>>;
  /** Secret values in clear; encoded to base64 as the API does. */
  secrets?: Record<string, Record<string, string>>;
  services?: V1Service[];
  /** undefined: a default one at 10.96.0.1:443; null: unreadable. */
  master?: V1Service | null;
}

export const defaultMaster = service('default', 'kubernetes', '10.96.0.1', [
  { port: 443, name: 'https', targetPort: 6443 },
]);

/** An EnvLookup over in-memory objects that counts reads. */
export function fakeLookup(cluster: FakeCluster): EnvLookup & { reads: string[] } {
  const reads: string[] = [];
  return {
    reads,
    async getConfigMap(namespace, name): Promise<V1ConfigMap | undefined> {
      reads.push(`configmap/${namespace}/${name}`);
      const data = cluster.configMaps?.[name];
      return data ? { metadata: { namespace, name }, data } : undefined;
    },
    async getSecret(namespace, name): Promise<V1Secret | undefined> {
      reads.push(`secret/${namespace}/${name}`);
      const data = cluster.secrets?.[name];
      if (!data) return undefined;
      const encoded = Object.fromEntries(
        Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      );
      return { metadata: { namespace, name }, data: encoded };
    },
    async listServices(namespace) {
      reads.push(`services/${namespace}`);
      return (cluster.services ?? []).filter((s) => s.metadata?.namespace === namespace);
    },
    async getMasterService() {
      return cluster.master === null ? undefined : (cluster.master ?? defaultMaster);
    },
  };
}

/** A Deployment as the API returns it, with server-set fields. */
export function deployment(
  name: string,
  labels: Record<string, string>,
  containers: V1Container[],
): Workload {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name,
      namespace: 'shop',
      resourceVersion: '100',
      uid: `uid-${name}`,
      generation: 3,
      annotations: { 'deployment.kubernetes.io/revision': '1' },
    },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers } },
    },
  };
}
