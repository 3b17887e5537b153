/**
 * `devbox down`: the local containers go, and the workload and its Services are
 * written back as they were before `up` (the originals live in the cluster, so
 * any machine can do it).
 */
import { connectCluster } from '../kube/connect.js';
import { describeHolder, findWorkload, type RestoreReport, sessionOf } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import type { Progress } from '../util/progress.js';
import { deleteSessionLease, deleteWorkloadLeases } from './lease.js';
import { removeLocalSessions, restoreInCluster } from './teardown.js';

export interface DownOptions {
  target: KubeTarget;
  workload: string;
  /** Leave the agent in the pods (pass-through while no session runs) for a faster next `up`. */
  keepAgent: boolean;
  /**
   * End only this session: when the workload now carries another one (someone
   * started their own after this one ended), leave the workload alone.
   */
  session?: string;
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
    const local = await removeLocalSessions(
      { workload: label, namespace, ...(options.session ? { sessionId: options.session } : {}) },
      progress,
    );
    const containersRemoved = local.containers;
    if (local.warning) warnings.push(local.warning);

    const holder = sessionOf(workload);
    if (options.session && holder && holder.id !== options.session) {
      warnings.push(
        `${label} now carries another session, of ${describeHolder(holder)}: left alone (session ${options.session} no longer held it)`,
      );
      await deleteSessionLease(client, namespace, options.session);
      return { workload: label, namespace, containersRemoved, restored: [], deleted: [], warnings };
    }
    // The session ends here: its Lease goes, so no one takes it for a live one.
    const endLease = async () =>
      holder
        ? (await deleteSessionLease(client, namespace, holder.id))
          ? [`lease/devbox-session-${holder.id}`]
          : []
        : deleteWorkloadLeases(client, namespace, label);
    if (options.keepAgent) {
      return {
        workload: label,
        namespace,
        containersRemoved,
        restored: [],
        deleted: await endLease(),
        warnings,
      };
    }
    const { restored, deleted } = await restoreInCluster(client, namespace, workload.kind, name, progress);
    deleted.push(...(await endLease()));
    for (const report of restored) {
      if (!report.exact)
        warnings.push(`${report.object} changed during the session; kept: ${report.drift.join(', ')}`);
    }
    return { workload: label, namespace, containersRemoved, restored, deleted, warnings };
  } finally {
    client.close();
  }
}
