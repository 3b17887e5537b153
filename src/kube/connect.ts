/** The cluster, reached once per command through the user's kubeconfig, with a progress step. */
import type { Progress } from '../util/progress.js';
import { createKubeClient, type KubeClient } from './client.js';
import type { KubeTarget } from './kubeconfig.js';

export async function connectCluster(target: KubeTarget, progress: Progress): Promise<KubeClient> {
  const client = createKubeClient(target);
  await progress.step(
    `Connecting to ${client.cluster.server} (context ${client.cluster.context})`,
    async () => {
      await client.request('GET', '/version', { timeoutMs: 10_000 });
    },
  );
  return client;
}
