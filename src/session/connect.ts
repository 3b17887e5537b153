/**
 * The two worlds a session spans: the cluster (through the user's kubeconfig)
 * and the Docker engine. Each is reached once per command, with a progress step.
 */
import { createDockerClient, type DockerClient } from '../docker/index.js';
import { createKubeClient, type KubeClient } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import type { Progress } from '../util/progress.js';

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

export async function connectToDocker(progress: Progress): Promise<DockerClient> {
  const docker = createDockerClient();
  await progress.step('Connecting to Docker', () => docker.ping({ timeoutMs: 10_000 }));
  return docker;
}
