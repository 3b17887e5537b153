/**
 * `devbox clean`: undoes every devbox change it can find, from any machine —
 * the local session containers and, in the cluster, every workload carrying a
 * session record or an agent, and the agent objects. What it finds comes from
 * labels and annotations alone.
 */
import { connectCluster } from '../kube/connect.js';
import { findSessions as findClusterSessions, type KubeClient, type RestoreReport } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { errorText } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { MANAGED_LABEL, MANAGED_VALUE } from './agent-objects.js';
import { removeLocalSessions, restoreInCluster } from './teardown.js';

export interface CleanOptions {
  target: KubeTarget;
  /** Every namespace (needs cluster-wide list rights) and every local session. */
  all: boolean;
  progress: Progress;
}

export interface CleanResult {
  namespaces: string[];
  containersRemoved: string[];
  restored: RestoreReport[];
  deleted: string[];
  warnings: string[];
}

export async function clean(options: CleanOptions): Promise<CleanResult> {
  const { progress } = options;
  const client = await connectCluster(options.target, progress);
  const result: CleanResult = {
    namespaces: [],
    containersRemoved: [],
    restored: [],
    deleted: [],
    warnings: [],
  };
  try {
    const namespaces = options.all ? await namespacesWithDevbox(client) : [client.namespace];
    result.namespaces = namespaces;
    const local = await removeLocalSessions(options.all ? {} : { namespace: client.namespace }, progress);
    result.containersRemoved.push(...local.containers);
    if (local.warning) result.warnings.push(local.warning);
    for (const namespace of namespaces) await cleanNamespace(client, namespace, result, progress);
    return result;
  } finally {
    client.close();
  }
}

async function cleanNamespace(
  client: KubeClient,
  namespace: string,
  result: CleanResult,
  progress: Progress,
) {
  for (const found of await findClusterSessions(client, namespace)) {
    const undone = await restoreInCluster(client, namespace, found.kind, found.name, progress);
    result.restored.push(...undone.restored);
    result.deleted.push(...undone.deleted);
  }
  // Agent objects whose workload is gone or was restored by hand (bundle and token share a name).
  try {
    const { items } = await client.list('ConfigMap', namespace, {
      labelSelector: `${MANAGED_LABEL}=${MANAGED_VALUE}`,
    });
    for (const item of items) {
      const name = item.metadata!.name!;
      if (await client.delete('ConfigMap', namespace, name))
        result.deleted.push(`configmap/${name} (${namespace})`);
      if (await client.delete('Secret', namespace, name))
        result.deleted.push(`secret/${name} (${namespace})`);
    }
  } catch (err) {
    result.warnings.push(`leftover agent objects in ${namespace} not looked for: ${errorText(err)}`);
  }
}

async function namespacesWithDevbox(client: KubeClient): Promise<string[]> {
  const found = new Set<string>();
  for (const kind of ['Deployment', 'StatefulSet'] as const) {
    for (const w of (await client.list(kind, undefined)).items) {
      const annotations = w.metadata?.annotations ?? {};
      if (Object.keys(annotations).some((k) => k.startsWith('devbox.dev/')))
        found.add(w.metadata!.namespace!);
    }
  }
  for (const cm of (
    await client.list('ConfigMap', undefined, { labelSelector: `${MANAGED_LABEL}=${MANAGED_VALUE}` })
  ).items) {
    found.add(cm.metadata!.namespace!);
  }
  return [...found].sort();
}
