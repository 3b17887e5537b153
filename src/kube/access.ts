/**
 * Up-front permission checks: every verb a command needs is asked of the API server
 * (SelfSubjectAccessReview) before anything changes, and all missing ones are named at once.
 */
import { DevboxError } from '../util/errors.js';
import { RBAC_TEMPLATE } from './api/errors.js';
import type { KubeClient } from './client.js';
import {
  DEVELOPER_ROLE,
  type DevboxCommand,
  describePermission,
  type Permission,
  permissionsFor,
} from './rbac.js';

/** The permissions `command` needs in `namespace` that the current user lacks. */
export async function missingPermissions(
  client: KubeClient,
  namespace: string,
  command: DevboxCommand,
): Promise<Permission[]> {
  return lackedPermissions(client, namespace, permissionsFor(command));
}

/** Those of `needed` the client's user lacks in `namespace`. */
export async function lackedPermissions(
  client: KubeClient,
  namespace: string,
  needed: readonly Permission[],
): Promise<Permission[]> {
  const checks = needed.map((p) => ({
    group: p.group,
    resource: p.resource,
    verb: p.verb,
    name: p.names?.[0],
  }));
  const allowed = await client.checkAccess(namespace, checks);
  return needed.filter((_, i) => !allowed[i]);
}

/** FORBIDDEN listing every missing permission, or nothing when all are granted. */
export async function assertPermissions(
  client: KubeClient,
  namespace: string,
  command: DevboxCommand,
): Promise<void> {
  const missing = await missingPermissions(client, namespace, command);
  if (missing.length === 0) return;
  throw new DevboxError(
    'FORBIDDEN',
    `devbox ${command} needs permissions you lack in namespace "${namespace}": ${missing.map(describePermission).join(', ')}`,
    {
      hint: `ask an admin to apply ${RBAC_TEMPLATE} in namespace ${namespace} and bind the ${DEVELOPER_ROLE} Role to you`,
    },
  );
}
