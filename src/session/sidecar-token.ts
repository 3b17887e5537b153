/**
 * The token the sidecar runs with. It is bound (TokenRequest `boundObjectRef`) to a Secret of
 * the session's own, `devbox-sidecar-<session id>`, which the session's Lease owns: when the
 * Lease goes — `down`, `clean`, a forced `clean` elsewhere — the garbage collector deletes the
 * Secret, and the API server then refuses every token bound to it. The sidecar renews its token
 * itself before it expires (sidecar/token-refresher.ts), bound to the same Secret: a detached
 * session has no CLI left to do it, and the sidecar runs with its developer's authority anyway
 * (the developer Role may mint these tokens too).
 */
import type { V1Secret } from '@kubernetes/client-node';
import { type KubeClient, type MintedToken, SIDECAR_ACCOUNT } from '../kube/index.js';
import { DevboxError } from '../util/errors.js';
import { sessionLeaseName } from '../util/session-lease.js';
import { MANAGED_LABEL, MANAGED_VALUE, SESSION_LABEL } from './agent-objects.js';
import { mintSidecarToken } from './sidecar-account.js';

/** Lifetime of each sidecar token; the sidecar renews it at 80 %. */
export const SIDECAR_TOKEN_SECONDS = 3600;

export function sidecarTokenSecretName(sessionId: string): string {
  return `devbox-sidecar-${sessionId}`;
}

/** The sidecar's token and what it needs to renew it (the sidecar config's `tokenRefresh`). */
export interface SessionSidecarToken {
  minted: MintedToken;
  refresh: {
    account: string;
    secret: string;
    secretUid: string;
    expirationSeconds: number;
    expiresAt: string;
  };
}

/** Creates the session's token Secret (owned by its Lease) and mints the sidecar's first token bound to it. */
export async function mintSessionSidecarToken(
  client: KubeClient,
  namespace: string,
  sessionId: string,
): Promise<SessionSidecarToken> {
  const leaseName = sessionLeaseName(sessionId);
  const lease = await client.get('Lease', namespace, leaseName);
  const leaseUid = lease?.metadata?.uid;
  if (!leaseUid) {
    throw new DevboxError('NOT_FOUND', `lease/${leaseName} is gone: the session was ended while it started`, {
      hint: 'run devbox up again',
    });
  }
  const secret: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: sidecarTokenSecretName(sessionId),
      namespace,
      labels: { [MANAGED_LABEL]: MANAGED_VALUE, [SESSION_LABEL]: sessionId },
      ownerReferences: [
        { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', name: leaseName, uid: leaseUid },
      ],
    },
    type: 'Opaque',
  };
  const created = await client.create('Secret', secret);
  const secretUid = created.metadata!.uid!;
  const name = secret.metadata!.name!;
  const minted = await mintSidecarToken(client, namespace, SIDECAR_TOKEN_SECONDS, { name, uid: secretUid });
  return {
    minted,
    refresh: {
      account: SIDECAR_ACCOUNT,
      secret: name,
      secretUid,
      expirationSeconds: SIDECAR_TOKEN_SECONDS,
      expiresAt: minted.expiresAt,
    },
  };
}
