/** `devbox env`: the environment the workload's container gets from Kubernetes. */

import { connectCluster } from '../kube/connect.js';
import { findWorkload, pickContainer, type ResolvedEnvVar, resolveWorkloadEnv } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import type { Progress } from '../util/progress.js';

export interface EnvOptions {
  target: KubeTarget;
  workload: string;
  container?: string;
  progress: Progress;
}

export interface EnvResult {
  workload: string;
  namespace: string;
  container: string;
  vars: ResolvedEnvVar[];
  warnings: string[];
}

export async function workloadEnv(options: EnvOptions): Promise<EnvResult> {
  const client = await connectCluster(options.target, options.progress);
  try {
    const namespace = client.namespace;
    const workload = await findWorkload(client, options.workload, namespace);
    const services = (await client.list('Service', namespace)).items;
    const container = pickContainer(workload, services, options.container).name;
    const env = await options.progress.step(`Resolving the env of ${container}`, () =>
      resolveWorkloadEnv(client, workload, container),
    );
    return {
      workload: `${workload.kind.toLowerCase()}/${workload.metadata?.name}`,
      namespace,
      container,
      vars: env.vars,
      warnings: env.warnings,
    };
  } finally {
    client.close();
  }
}
