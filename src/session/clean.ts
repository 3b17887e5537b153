/**
 * `devbox clean`: undoes every devbox change it can find, from any machine —
 * the local session containers and, in the cluster, every workload carrying a
 * session record or an agent, and the agent objects. What it finds comes from
 * labels and annotations alone. A session whose Lease is still renewed is alive —
 * someone is using it — and is left alone unless forced (design: state can be told
 * live from dead).
 */
import { connectCluster } from '../kube/connect.js';
import {
  agentObjectNames,
  describeHolder,
  findInterceptedWorkloads,
  type InterceptedWorkload,
  type KubeClient,
  type RestoreReport,
} from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { errorText } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { sessionLeaseName } from '../util/session-lease.js';
import { MANAGED_LABEL, MANAGED_VALUE } from './agent-objects.js';
import { deleteSessionLease, leaseState, sessionLeaseState } from './lease.js';
import { leaveWorkload } from './leave.js';
import { removeLocalSessions } from './teardown.js';

export interface CleanOptions {
  target: KubeTarget;
  /** Every namespace (needs cluster-wide list rights) and every local session. */
  all: boolean;
  /** End live sessions too (their Lease is still renewed: someone is using them). */
  force: boolean;
  progress: Progress;
}

/** A live session `clean` left alone. */
export interface LeftSession {
  namespace: string;
  workload: string;
  holder: string;
  /** Seconds since its Lease was last renewed. */
  renewedSecondsAgo: number;
}

export interface CleanResult {
  namespaces: string[];
  containersRemoved: string[];
  restored: RestoreReport[];
  deleted: string[];
  /** Live sessions of others (or of this machine) left as they are; `--force` ends them. */
  left: LeftSession[];
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
    left: [],
    warnings: [],
  };
  try {
    const namespaces = options.all ? await namespacesWithDevbox(client) : [client.namespace];
    result.namespaces = namespaces;
    // Which sessions live is read before anything is removed; a live one keeps its local containers too.
    const found = new Map<string, Ending[]>();
    const liveIds = new Set<string>();
    for (const namespace of namespaces) {
      const endings: Ending[] = [];
      for (const workload of await findInterceptedWorkloads(client, namespace)) {
        const dead: string[] = [];
        for (const session of workload.sessions) {
          const state = await sessionLeaseState(client, namespace, session.id);
          if (!state.live || options.force) {
            dead.push(session.id);
            continue;
          }
          liveIds.add(session.id);
          result.left.push({
            namespace,
            workload: `${workload.kind.toLowerCase()}/${workload.name}`,
            holder: describeHolder(session),
            renewedSecondsAgo: state.renewedSecondsAgo ?? 0,
          });
        }
        const live = workload.sessions.length - dead.length;
        // A workload with live sessions only loses its dead ones; with none it is restored.
        if (dead.length || live === 0) endings.push({ workload, dead });
      }
      found.set(namespace, endings);
    }
    const local = await removeLocalSessions(
      options.all ? {} : { namespace: client.namespace },
      progress,
      liveIds,
    );
    result.containersRemoved.push(...local.containers);
    if (local.warning) result.warnings.push(local.warning);
    for (const namespace of namespaces) {
      const kept = result.left.filter((l) => l.namespace === namespace);
      await cleanNamespace(
        client,
        namespace,
        found.get(namespace) ?? [],
        kept,
        liveIds,
        options.force,
        result,
        progress,
      );
    }
    return result;
  } finally {
    client.close();
  }
}

/** A workload `clean` acts on, and its sessions that no longer live. */
interface Ending {
  workload: InterceptedWorkload;
  dead: string[];
}

async function cleanNamespace(
  client: KubeClient,
  namespace: string,
  endings: Ending[],
  left: LeftSession[],
  liveIds: ReadonlySet<string>,
  force: boolean,
  result: CleanResult,
  progress: Progress,
) {
  for (const { workload, dead } of endings) {
    const undone = await leaveWorkload(client, namespace, workload.kind, workload.name, dead, {
      keepAgent: false,
      onlyIfRecorded: false,
      progress,
    });
    result.restored.push(...undone.restored);
    result.deleted.push(...undone.deleted);
    for (const id of dead)
      if (await deleteSessionLease(client, namespace, id))
        result.deleted.push(`lease/${sessionLeaseName(id)}`);
  }
  // Agent objects whose workload is gone or was restored by hand (bundle and token share a name),
  // except those of the live sessions left alone.
  const keptObjects = new Set(
    left.map((l) => {
      const [kind, name] = l.workload.split('/') as [string, string];
      return agentObjectNames(kind === 'statefulset' ? 'StatefulSet' : 'Deployment', name).configMap;
    }),
  );
  try {
    const { items } = await client.list('ConfigMap', namespace, {
      labelSelector: `${MANAGED_LABEL}=${MANAGED_VALUE}`,
    });
    for (const item of items) {
      const name = item.metadata!.name!;
      if (keptObjects.has(name)) continue;
      if (await client.delete('ConfigMap', namespace, name))
        result.deleted.push(`configmap/${name} (${namespace})`);
      if (await client.delete('Secret', namespace, name))
        result.deleted.push(`secret/${name} (${namespace})`);
    }
    // Leases of sessions that ended without their workload (an up killed before it changed it);
    // forced, also one renewed moments ago by an up that was killed before its claim.
    const leases = await client.list('Lease', namespace, {
      labelSelector: `${MANAGED_LABEL}=${MANAGED_VALUE}`,
    });
    for (const lease of leases.items) {
      const name = lease.metadata!.name!;
      if ([...liveIds].some((id) => sessionLeaseName(id) === name) || (!force && leaseState(lease).live))
        continue;
      if (await client.delete('Lease', namespace, name)) result.deleted.push(`lease/${name} (${namespace})`);
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
