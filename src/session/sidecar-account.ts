/**
 * The sidecar's ServiceAccount, Role and RoleBinding are an administrator's to install
 * (templates/rbac/devbox-developer-role.yaml holds them next to the developer Role):
 * devbox never creates RBAC objects, and the developer Role grants no read of them.
 * Whether the account is there and allowed what the sidecar does is asked as the
 * account itself — a token minted for it, then SelfSubjectAccessReviews made with that
 * token — before `up` changes anything.
 */
import {
  createKubeClient,
  describePermission,
  type KubeClient,
  type KubeTarget,
  lackedPermissions,
  loadKubeConfig,
  type MintedToken,
  type Permission,
  RBAC_TEMPLATE,
  SIDECAR_ACCOUNT,
  SIDECAR_PERMISSIONS,
} from '../kube/index.js';
import { DevboxError, isDevboxError } from '../util/errors.js';

const askAdmin = (namespace: string) =>
  `ask an admin to apply ${RBAC_TEMPLATE} in namespace ${namespace} (kubectl apply -n ${namespace} -f …): it installs the sidecar's account, Role and RoleBinding`;

/** A token for the sidecar's account; NOT_FOUND naming the template when the account is missing. */
export async function mintSidecarToken(
  client: KubeClient,
  namespace: string,
  expirationSeconds: number,
  boundSecret?: { name: string; uid: string },
): Promise<MintedToken> {
  try {
    return await client.requestToken(namespace, SIDECAR_ACCOUNT, {
      expirationSeconds,
      ...(boundSecret ? { boundSecret } : {}),
    });
  } catch (err) {
    if (isDevboxError(err, 'NOT_FOUND')) {
      throw new DevboxError(
        'NOT_FOUND',
        `serviceaccount/${SIDECAR_ACCOUNT} does not exist in namespace "${namespace}"`,
        { hint: askAdmin(namespace), cause: err },
      );
    }
    throw err;
  }
}

/** What the sidecar would lack in `namespace` with `token` (asked as the sidecar). */
export async function sidecarLacks(
  target: KubeTarget,
  namespace: string,
  token: string,
): Promise<Permission[]> {
  const loaded = loadKubeConfig(target);
  const user = { name: SIDECAR_ACCOUNT, user: { token } };
  const asSidecar = createKubeClient({
    loaded: { ...loaded, user: { name: SIDECAR_ACCOUNT, token }, entries: { ...loaded.entries, user } },
  });
  try {
    return await lackedPermissions(asSidecar, namespace, SIDECAR_PERMISSIONS);
  } finally {
    asSidecar.close();
  }
}

/** Mints the sidecar's token and checks its permissions; FORBIDDEN naming what its Role lacks. */
export async function sidecarCredentials(
  client: KubeClient,
  target: KubeTarget,
  namespace: string,
  expirationSeconds: number,
): Promise<MintedToken> {
  const minted = await mintSidecarToken(client, namespace, expirationSeconds);
  const lacking = await sidecarLacks(target, namespace, minted.token);
  if (lacking.length) {
    throw new DevboxError(
      'FORBIDDEN',
      `serviceaccount/${SIDECAR_ACCOUNT} in namespace "${namespace}" may not: ${lacking.map(describePermission).join(', ')}`,
      { hint: askAdmin(namespace) },
    );
  }
  return minted;
}
