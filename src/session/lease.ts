/**
 * The CLI's side of a session's Lease (util/session-lease.ts): `up` creates it before
 * changing anything else and renews it until the sidecar takes over; `down` and `clean`
 * delete it with the session; `clean` reads it to leave live sessions alone.
 */
import type { V1Lease } from '@kubernetes/client-node';
import { KubeApiError, type KubeClient, type SessionHolder } from '../kube/index.js';
import { errorText } from '../util/errors.js';
import {
  LEASE_DURATION_SECONDS,
  LEASE_RENEW_MS,
  microTime,
  sessionLeaseName,
} from '../util/session-lease.js';
import { MANAGED_LABEL, MANAGED_VALUE } from './agent-objects.js';
import { sidecarTokenSecretName } from './sidecar-token.js';

/** Label on each session Lease naming its workload (`deployment.api`). */
export const LEASE_WORKLOAD_LABEL = 'devbox.dev/workload';

/** The label value for `deployment/api` (a label value takes no slash). */
const workloadLabelValue = (workload: string) => workload.replace('/', '.');

/** Creates (or, for a resumed session, renews) the Lease of `holder`'s session on `workload`. */
export async function createSessionLease(
  client: KubeClient,
  namespace: string,
  holder: SessionHolder,
  workload: string,
): Promise<string> {
  const name = sessionLeaseName(holder.id);
  const now = microTime(new Date());
  const lease: V1Lease = {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: {
      name,
      namespace,
      labels: { [MANAGED_LABEL]: MANAGED_VALUE, [LEASE_WORKLOAD_LABEL]: workloadLabelValue(workload) },
    },
    spec: {
      holderIdentity: `${holder.user}@${holder.host}`,
      leaseDurationSeconds: LEASE_DURATION_SECONDS,
      acquireTime: now as never,
      renewTime: now as never,
    },
  };
  try {
    await client.create('Lease', lease);
  } catch (err) {
    if (!(err instanceof KubeApiError && err.status === 409)) throw err;
    await renewSessionLease(client, namespace, holder.id);
  }
  return name;
}

export async function renewSessionLease(client: KubeClient, namespace: string, id: string): Promise<void> {
  await client.patch(
    'Lease',
    namespace,
    sessionLeaseName(id),
    { spec: { renewTime: microTime(new Date()) } },
    'merge',
  );
}

/** Renews the Lease every LEASE_RENEW_MS until the returned function is called; failures are left to the next tick. */
export function keepRenewing(
  client: KubeClient,
  namespace: string,
  id: string,
  onError?: (text: string) => void,
): () => void {
  const timer = setInterval(() => {
    renewSessionLease(client, namespace, id).catch((err) => onError?.(errorText(err)));
  }, LEASE_RENEW_MS);
  timer.unref();
  return () => clearInterval(timer);
}

export async function deleteSessionLease(
  client: KubeClient,
  namespace: string,
  id: string,
): Promise<boolean> {
  // The garbage collector would take the sidecar token's Secret with the Lease, but only later (long
  // after an API server restart): removed here, the namespace is as it was when the caller returns.
  await client.delete('Secret', namespace, sidecarTokenSecretName(id));
  return client.delete('Lease', namespace, sessionLeaseName(id));
}

/** Whether a session lives, and how long ago its Lease was last renewed. */
export interface LeaseState {
  live: boolean;
  /** Seconds since the last renewal (undefined without a Lease). */
  renewedSecondsAgo?: number;
}

/** Live while the Lease was renewed within its duration (by this machine's clock). */
export function leaseState(lease: V1Lease | undefined, now = Date.now()): LeaseState {
  const renewed = lease?.spec?.renewTime ?? lease?.spec?.acquireTime;
  if (!lease || !renewed) return { live: false };
  const at = new Date(renewed as unknown as string).getTime();
  if (Number.isNaN(at)) return { live: false };
  const age = Math.max(0, Math.round((now - at) / 1000));
  const duration = lease.spec?.leaseDurationSeconds ?? LEASE_DURATION_SECONDS;
  return { live: age <= duration, renewedSecondsAgo: age };
}

/** The state of `id`'s session, read from its Lease. */
export async function sessionLeaseState(
  client: KubeClient,
  namespace: string,
  id: string,
): Promise<LeaseState> {
  return leaseState(await client.get('Lease', namespace, sessionLeaseName(id)));
}

/** Deletes the Leases labelled for `workload` (those of `up`s killed before they changed it). */
export async function deleteWorkloadLeases(
  client: KubeClient,
  namespace: string,
  workload: string,
): Promise<string[]> {
  const { items } = await client.list('Lease', namespace, {
    labelSelector: `${MANAGED_LABEL}=${MANAGED_VALUE},${LEASE_WORKLOAD_LABEL}=${workloadLabelValue(workload)}`,
  });
  const deleted: string[] = [];
  for (const lease of items) {
    const name = lease.metadata!.name!;
    if (await client.delete('Lease', namespace, name)) deleted.push(`lease/${name}`);
  }
  return deleted;
}
