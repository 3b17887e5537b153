/** The sample shop in a namespace of the test's own, deployed with the admin kubeconfig. */
import { deployShop } from '../../src/demo/shop.js';
import { createKubeClient } from '../../src/kube/index.js';
import { clusterImages, kubeconfig, testNamespace } from './cluster.js';

export async function shopNamespace(prefix: string): Promise<Awaited<ReturnType<typeof testNamespace>>> {
  const ns = await testNamespace(prefix);
  const client = createKubeClient({ kubeconfig, namespace: ns.name });
  try {
    await deployShop(client, ns.name, clusterImages().runtime);
  } finally {
    client.close();
  }
  return ns;
}
