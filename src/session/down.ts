/**
 * `devbox down`: one session of a workload ends — its local containers, its Lease, its entry in
 * the workload's session record. The workload and its Services are written back as they were
 * before `up` (the originals live in the cluster, so any machine can do it) when the last
 * session leaves; the others keep running untouched.
 */
import { userInfo } from 'node:os';
import { connectCluster } from '../kube/connect.js';
import {
  defaultSessionName,
  describeHolder,
  findWorkload,
  type RestoreReport,
  type SessionRecord,
  sessionsOf,
} from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { DevboxError } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { sessionLeaseName } from '../util/session-lease.js';
import { deleteSessionLease, deleteWorkloadLeases } from './lease.js';
import { leaveWorkload } from './leave.js';
import { removeLocalSessions } from './teardown.js';

export interface DownOptions {
  target: KubeTarget;
  workload: string;
  /** Leave the agent in the pods (pass-through while no session runs) for a faster next `up`. */
  keepAgent: boolean;
  /** The session to end, by its name on the workload (`up --name`; default: the user's). */
  name?: string;
  /**
   * End only this session, by id (the `down` of a foreground `up`): when the workload no
   * longer records it, the workload is left alone.
   */
  session?: string;
  progress: Progress;
}

export interface DownResult {
  workload: string;
  namespace: string;
  /** The session that ended (its name), when the workload recorded it. */
  ended?: string;
  /** The sessions still on the workload. */
  remaining: { name: string; holder: string }[];
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
    const defaultName = defaultSessionName(userInfo().username);
    const sessionName = options.name ?? defaultName;
    const sessions = sessionsOf(workload);
    // Without --name, the only session of a workload is ended from any machine, as before names.
    const mine = options.session
      ? sessions.find((s) => s.id === options.session)
      : (sessions.find((s) => s.name === sessionName) ??
        (options.name === undefined && sessions.length === 1 ? sessions[0] : undefined));
    const others = sessions.filter((s) => s !== mine);
    if (!mine && others.length && !options.session) throw notFound(label, sessionName, others, namespace);

    const warnings: string[] = [];
    const local = await removeLocalSessions(
      { workload: label, namespace, ...(options.session ? { sessionId: options.session } : {}) },
      progress,
      new Set(),
      // Without a record of it, this name's containers go (a session that never got its entry).
      (s) => (mine ? s.id === mine.id : (s.name ?? defaultName) === sessionName),
    );
    if (local.warning) warnings.push(local.warning);
    const result = { workload: label, namespace, containersRemoved: local.containers, warnings };
    const remaining = (list: SessionRecord[]) =>
      list.map((s) => ({ name: s.name, holder: describeHolder(s) }));

    if (!mine && options.session) {
      if (others.length)
        warnings.push(
          `${label} now carries another session, of ${others.map(describeHolder).join('; ')}: left alone (session ${options.session} is no longer on it)`,
        );
      await deleteSessionLease(client, namespace, options.session);
      return { ...result, remaining: remaining(others), restored: [], deleted: [] };
    }
    const left = await leaveWorkload(client, namespace, workload.kind, name, mine ? [mine.id] : [], {
      keepAgent: options.keepAgent,
      onlyIfRecorded: false,
      progress,
    });
    // The session ends here: its Lease goes, so no one takes it for a live one.
    const deleted = [...left.deleted];
    if (mine) {
      if (await deleteSessionLease(client, namespace, mine.id))
        deleted.push(`lease/${sessionLeaseName(mine.id)}`);
    } else if (left.remaining.length === 0) {
      // Leases of `up`s killed before they recorded themselves.
      deleted.push(...(await deleteWorkloadLeases(client, namespace, label)));
    }
    for (const report of left.restored) {
      if (!report.exact)
        warnings.push(`${report.object} changed during the session; kept: ${report.drift.join(', ')}`);
    }
    return {
      ...result,
      ...(mine ? { ended: mine.name } : {}),
      remaining: remaining(left.remaining),
      restored: left.restored,
      deleted,
    };
  } finally {
    client.close();
  }
}

function notFound(label: string, name: string, others: SessionRecord[], namespace: string): DevboxError {
  const short = label.split('/')[1];
  return new DevboxError('NOT_FOUND', `${label} has no session named ${name}`, {
    hint: `its sessions: ${others.map((s) => `${s.name} (${describeHolder(s)})`).join('; ')}; end one with \`devbox down ${short} -n ${namespace} --name <name>\``,
  });
}
