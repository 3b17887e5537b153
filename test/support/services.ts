/**
 * Selector-less Services for tests and benchmarks of namespaces with many Services, and
 * endpoints that let a chosen few of them answer (the sample shop's inventory pod).
 */
import type { KubeClient } from '../../src/kube/index.js';
import { kubectl } from './cluster.js';

/** Creates Service `name` on port 80 → 8080 and returns its ClusterIP. */
export async function createService(client: KubeClient, namespace: string, name: string): Promise<string> {
  const created = (await client.request('POST', `/api/v1/namespaces/${namespace}/services`, {
    body: {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name },
      spec: { ports: [{ name: 'http', port: 80, targetPort: 8080 }] },
    },
  })) as { spec?: { clusterIP?: string } };
  return created.spec?.clusterIP ?? '';
}

/** Endpoints for a selector-less Service: `podIp` on 8080 answers it. */
export async function backService(
  client: KubeClient,
  namespace: string,
  service: string,
  podIp: string,
): Promise<void> {
  await client.request('POST', `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices`, {
    body: {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: `${service}-devbox-test`,
        labels: {
          'kubernetes.io/service-name': service,
          'endpointslice.kubernetes.io/managed-by': 'devbox-test',
        },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: [podIp], conditions: { ready: true } }],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    },
  });
}

/** The sample shop's inventory pod address (it answers any path on 8080). */
export async function inventoryPodIp(namespace: string): Promise<string> {
  const out = await kubectl([
    '-n',
    namespace,
    'get',
    'pods',
    '-l',
    'app=inventory',
    '-o',
    'jsonpath={.items[0].status.podIP}',
  ]);
  return out.trim();
}
