/**
 * While a foreground session runs: ConfigMaps, Secrets, downward API fields and
 * tokens that change in the cluster are copied into the local container, as
 * the kubelet refreshes a pod's volumes.
 */
import { createDockerClient, updateFiles } from '../docker/index.js';
import { createKubeClient, findWorkload } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { followVolumes } from '../kube/volumes/index.js';
import { injectedFiles, resolvePodFiles } from './pod-files.js';

export interface FollowOptions {
  target: KubeTarget;
  workload: string;
  namespace: string;
  container: string;
  serviceId: string;
  signal: AbortSignal;
  onWarning: (text: string) => void;
}

/** Resolves when `signal` aborts. */
export async function followPodFiles(options: FollowOptions): Promise<void> {
  const client = createKubeClient({ ...options.target, namespace: options.namespace });
  const docker = createDockerClient();
  try {
    const workload = await findWorkload(client, options.workload, options.namespace);
    const files = await resolvePodFiles(client, workload, options.container, {});
    await followVolumes(
      client,
      files.input,
      async (change) => {
        const live = change.files.filter((f) => f.live);
        if (live.length)
          await updateFiles(docker, options.serviceId, injectedFiles(live), { signal: options.signal });
      },
      options.signal,
      {
        initial: files.layout,
        ...(files.podName ? { podName: files.podName } : {}),
        onWarning: options.onWarning,
      },
    );
  } finally {
    client.close();
  }
}
