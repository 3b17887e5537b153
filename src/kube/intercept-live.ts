/**
 * The cluster side of a session, on top of KubeClient and the pure transforms:
 * find the workload, write the intercept, undo it, find sessions to clean.
 * Every write is a read-compute-replace loop: a 409 means someone changed the object
 * since it was read, so it is read again and the change recomputed.
 */
import type { V1Service } from '@kubernetes/client-node';
import { DevboxError } from '../util/errors.js';
import { KubeApiError } from './api/errors.js';
import type { KubeClient } from './client.js';
import {
  AGENT_CONTAINER,
  ANNOTATION_ORIGINAL,
  type Restored,
  type RestoreOptions,
  restoreService,
  restoreWorkload,
  type SessionHolder,
  serviceOriginal,
  sessionOf,
  sessionsOf,
  workloadOriginal,
} from './intercept.js';
import type { SessionRecord } from './restore-record.js';
import {
  chooseWorkload,
  parseWorkloadRef,
  podTemplate,
  type Workload,
  type WorkloadKind,
  workloadLabel,
} from './workload.js';

/** Finds `<workload>` in `namespace`; NOT_FOUND suggests the nearest names. */
export async function findWorkload(client: KubeClient, text: string, namespace: string): Promise<Workload> {
  const ref = parseWorkloadRef(text);
  const kinds: WorkloadKind[] = ref.kind ? [ref.kind] : ['Deployment', 'StatefulSet'];
  const found = await Promise.all(kinds.map((k) => getWorkload(client, k, namespace, ref.name)));
  const present = found.filter((w): w is Workload => w !== undefined);
  if (present.length) return chooseWorkload(ref, namespace, present, []);
  return chooseWorkload(ref, namespace, [], await listWorkloadNames(client, namespace, kinds));
}

/** One workload by kind and name, with `kind` set; undefined when absent. */
export async function getWorkload(
  client: KubeClient,
  kind: WorkloadKind,
  namespace: string,
  name: string,
): Promise<Workload | undefined> {
  const obj = await client.get(kind, namespace, name);
  return obj ? ({ ...obj, kind } as Workload) : undefined;
}

async function listWorkloadNames(client: KubeClient, namespace: string, kinds: WorkloadKind[]) {
  const lists = await Promise.all(
    kinds.map(async (kind) => ({ kind, list: await client.list(kind, namespace) })),
  );
  return lists.flatMap(({ kind, list }) => list.items.map((w) => ({ kind, name: w.metadata?.name ?? '' })));
}

/** Every Deployment and StatefulSet of the namespace. */
export async function listWorkloads(client: KubeClient, namespace: string): Promise<Workload[]> {
  const [d, s] = await Promise.all([
    client.list('Deployment', namespace),
    client.list('StatefulSet', namespace),
  ]);
  return [
    ...d.items.map((w) => ({ ...w, kind: 'Deployment' as const })),
    ...s.items.map((w) => ({ ...w, kind: 'StatefulSet' as const })),
  ];
}

/**
 * Reads, computes and replaces until the write lands on the version it was computed
 * from. `compute` returns undefined when there is nothing to write.
 */
export async function updateWithRetry<T extends { metadata?: { resourceVersion?: string } }>(
  read: () => Promise<T | undefined>,
  compute: (current: T) => T | undefined,
  write: (next: T) => Promise<T>,
  attempts = 5,
): Promise<T | undefined> {
  for (let i = 1; ; i++) {
    const current = await read();
    if (!current) return undefined;
    const next = compute(current);
    if (!next) return undefined;
    try {
      return await write(next);
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 409) || i >= attempts) throw err;
    }
  }
}

/** Writes the workload with the agent (plan.workload, computed from the object as read). */
export async function writeWorkload(client: KubeClient, workload: Workload): Promise<Workload> {
  const written = await client.replace(workload.kind, workload as never);
  return { ...(written as object), kind: workload.kind } as Workload;
}

/** Writes retargeted Services (plan.services, computed from the objects as read). */
export async function writeServices(
  client: KubeClient,
  services: readonly V1Service[],
): Promise<V1Service[]> {
  const out: V1Service[] = [];
  for (const planned of services) {
    const namespace = planned.metadata?.namespace ?? client.namespace;
    const name = planned.metadata?.name ?? '';
    // Services change under us (load-balancer status, external-dns annotations): on a conflict,
    // only devbox's own change is applied again, to the Service as it is now.
    let first = true;
    const written = await updateWithRetry(
      async () => (first ? planned : await client.get('Service', namespace, name)),
      (current) => {
        if (first) {
          first = false;
          return current;
        }
        return retargetAgain(current, planned);
      },
      (s) => client.replace('Service', s),
    );
    if (!written) throw new DevboxError('CONFLICT', `service/${name} was deleted while devbox changed it`);
    out.push(written);
  }
  return out;
}

/**
 * devbox's change of `planned` (its retargeted ports and record), made again on `current`.
 * CONFLICT when a port devbox moves no longer targets what it did when planned.
 */
function retargetAgain(current: V1Service, planned: V1Service): V1Service {
  const record = serviceOriginal(planned)!;
  const name = current.metadata?.name ?? '';
  const next = structuredClone(current);
  for (const moved of record.ports) {
    const port = next.spec?.ports?.find(
      (p) => p.port === moved.port && (p.protocol || 'TCP') === moved.protocol,
    );
    const before = record.spec?.ports?.find(
      (p) => p.port === moved.port && (p.protocol || 'TCP') === moved.protocol,
    );
    if (!port || (port.targetPort ?? port.port) !== (before?.targetPort ?? before?.port)) {
      throw new DevboxError(
        'CONFLICT',
        `service/${name} port ${moved.port}/${moved.protocol} changed while devbox pointed it at the agent`,
        {
          hint: 'run devbox up again',
        },
      );
    }
    port.targetPort = moved.targetPort;
  }
  next.metadata = {
    ...next.metadata,
    annotations: {
      ...next.metadata?.annotations,
      [ANNOTATION_ORIGINAL]: JSON.stringify({ ...record, spec: structuredClone(current.spec) }),
    },
  };
  return next;
}

/** What restoring one object did. */
export interface RestoreReport {
  object: string;
  exact: boolean;
  drift: string[];
}

/**
 * Undoes a session on `workload`: Services first (traffic goes back to the app while
 * the agent still runs next to it), then the workload. Also restores Services that
 * name this workload in their annotation but are missing from the workload's list.
 */
export async function restoreSession(
  client: KubeClient,
  namespace: string,
  kind: WorkloadKind,
  name: string,
  options: RestoreOptions = {},
): Promise<RestoreReport[]> {
  const label = workloadLabel(kind, name);
  const reports: RestoreReport[] = [];
  const current = await getWorkload(client, kind, namespace, name);
  // Every record is checked before the first write: a tampered one changes nothing.
  if (current) sessionOf(current);
  const listed = current ? (workloadOriginal(current)?.services ?? []) : [];
  const all = (await client.list('Service', namespace)).items;
  const annotated = all
    .filter((s) => {
      try {
        return serviceOriginal(s)?.workload === label;
      } catch {
        return false;
      }
    })
    .map((s) => s.metadata?.name ?? '');
  for (const s of all) if (listed.includes(s.metadata?.name ?? '')) serviceOriginal(s);
  for (const svc of [...new Set([...listed, ...annotated])].sort()) {
    let result: Restored<V1Service> | undefined;
    await updateWithRetry(
      () => client.get('Service', namespace, svc),
      (s) => {
        result = restoreService(s, options);
        return result?.object;
      },
      (s) => client.replace('Service', s),
    );
    if (result) reports.push({ object: `service/${svc}`, exact: result.exact, drift: result.drift });
  }
  let restored: Restored<Workload> | undefined;
  await updateWithRetry(
    () => getWorkload(client, kind, namespace, name),
    (w) => {
      restored = restoreWorkload(w, options);
      return restored?.object;
    },
    (w) => writeWorkload(client, w),
  );
  if (restored) reports.push({ object: label, exact: restored.exact, drift: restored.drift });
  return reports;
}

/** A workload a devbox session intercepts (or left its record or agent in). */
export interface InterceptedWorkload {
  kind: WorkloadKind;
  name: string;
  /** The oldest of `sessions`. */
  holder: SessionHolder | undefined;
  sessions: SessionRecord[];
}

/**
 * Workloads of the namespace that carry a devbox session, its record, or an agent container.
 * CONFLICT, naming the field, when one of their records is not what devbox writes.
 */
export async function findInterceptedWorkloads(
  client: KubeClient,
  namespace: string,
): Promise<InterceptedWorkload[]> {
  const workloads = await listWorkloads(client, namespace);
  for (const w of workloads) workloadOriginal(w);
  return workloads
    .filter(
      (w) =>
        w.metadata?.annotations?.[ANNOTATION_ORIGINAL] !== undefined ||
        sessionOf(w) !== undefined ||
        podTemplate(w).spec?.containers.some((c) => c.name === AGENT_CONTAINER),
    )
    .map((w) => ({
      kind: w.kind,
      name: w.metadata?.name ?? '',
      holder: sessionOf(w),
      sessions: sessionsOf(w),
    }));
}

/** Names of the agent's ConfigMap (bundle) and Secret (token) for a workload. */
export function agentObjectNames(kind: WorkloadKind, name: string): { configMap: string; secret: string } {
  const base = `devbox-agent-${kind === 'Deployment' ? 'deploy' : 'sts'}-${name}`;
  if (base.length > 253) throw new DevboxError('BAD_INPUT', `workload name too long: ${name}`);
  return { configMap: base, secret: base };
}
