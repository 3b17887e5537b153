/**
 * `devbox down`: the local containers go, and the workload and its Services are
 * written back as they were before `up` (the originals live in the cluster, so
 * any machine can do it).
 */
import { findSessions, removeSession } from '../docker/index.js';
import {
  findSessions as findClusterSessions,
  findWorkload,
  type RestoreReport,
  restoreSession,
} from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { errorText } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { deleteAgentObjects, deleteAutoCreatedSidecarAccount } from './agent-objects.js';
import { connectCluster, connectToDocker } from './connect.js';

export interface DownOptions {
  target: KubeTarget;
  workload: string;
  /** Leave the agent in the pods (pass-through while no session runs) for a faster next `up`. */
  keepAgent: boolean;
  progress: Progress;
}

export interface DownResult {
  workload: string;
  namespace: string;
  containersRemoved: string[];
  restored: RestoreReport[];
  deleted: string[];
  warnings: string[];
}

export async function down(options: DownOptions): Promise<DownResult> {
  const { progress } = options;
  const client = await connectCluster(options.target, progress);
  try {
    const namespace = client.namespace;
    const workload = await findWorkload(client, options.workload, namespace);
    const name = workload.metadata!.name!;
    const label = `${workload.kind.toLowerCase()}/${name}`;
    const warnings: string[] = [];
    const containersRemoved: string[] = [];

    try {
      const docker = await connectToDocker(progress);
      for (const session of await findSessions(docker, { workload: label, namespace })) {
        const removed = await progress.step(`Removing the local containers of session ${session.id}`, () =>
          removeSession(docker, session.id),
        );
        containersRemoved.push(...removed.containers);
      }
    } catch (err) {
      warnings.push(
        `local containers not removed: ${errorText(err)}; run \`devbox clean\` once Docker answers`,
      );
    }

    if (options.keepAgent) {
      return { workload: label, namespace, containersRemoved, restored: [], deleted: [], warnings };
    }
    const restored = await progress.step(`Restoring ${label} and its Services`, () =>
      restoreSession(client, namespace, workload.kind, name),
    );
    for (const report of restored) {
      if (!report.exact)
        warnings.push(`${report.object} changed during the session; kept: ${report.drift.join(', ')}`);
    }
    const deleted = await progress.step('Removing the agent bundle and token', () =>
      deleteAgentObjects(client, namespace, workload.kind, name),
    );
    if ((await findClusterSessions(client, namespace)).length === 0) {
      deleted.push(...(await deleteAutoCreatedSidecarAccount(client, namespace)));
    }
    return { workload: label, namespace, containersRemoved, restored, deleted, warnings };
  } finally {
    client.close();
  }
}
