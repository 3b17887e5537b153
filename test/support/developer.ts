/**
 * A developer as README's Permissions section promises devbox works for: an admin has
 * applied templates/rbac/devbox-developer-role.yaml in the namespace and bound its
 * `devbox-developer` Role to the user, and the user holds nothing else. The user is a
 * ServiceAccount of the namespace with a TokenRequest token; its kubeconfig names the
 * local cluster and the namespace. The admin kubeconfig only makes it.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { DEVELOPER_ROLE } from '../../src/kube/rbac.js';
import { kubeconfig as adminKubeconfig, kubectl } from './cluster.js';

/** The template a user's admin applies (tests run from dist/test/…). */
export const developerRoleTemplate = fileURLToPath(
  new URL('../../../templates/rbac/devbox-developer-role.yaml', import.meta.url),
);

export interface Developer {
  /** The API server's name for the user: `system:serviceaccount:<namespace>:<name>`. */
  user: string;
  /** A kubeconfig holding only this user's token, its context set to the namespace. */
  kubeconfig: string;
}

/**
 * Applies the RBAC template in `namespace` as an admin would, and returns a user
 * holding only the developer Role there.
 */
export async function developerIn(namespace: string, name = 'developer'): Promise<Developer> {
  await kubectl(['-n', namespace, 'apply', '-f', developerRoleTemplate]);
  await kubectl(['-n', namespace, 'create', 'serviceaccount', name]);
  await kubectl([
    '-n',
    namespace,
    'create',
    'rolebinding',
    `${DEVELOPER_ROLE}-${name}`,
    `--role=${DEVELOPER_ROLE}`,
    `--serviceaccount=${namespace}:${name}`,
  ]);
  const token = (await kubectl(['-n', namespace, 'create', 'token', name, '--duration=4h'])).trim();
  return {
    user: `system:serviceaccount:${namespace}:${name}`,
    kubeconfig: tokenKubeconfig(namespace, name, token),
  };
}

/** A kubeconfig for the local cluster holding only `token` (user `name`), its context set to `namespace`. */
export function tokenKubeconfig(namespace: string, name: string, token: string): string {
  const admin = parse(readFileSync(adminKubeconfig, 'utf8')) as {
    'current-context': string;
    contexts: { name: string; context: { cluster: string } }[];
    clusters: { name: string; cluster: Record<string, unknown> }[];
  };
  const clusterName = admin.contexts.find((c) => c.name === admin['current-context'])!.context.cluster;
  const cluster = { ...admin.clusters.find((c) => c.name === clusterName)!.cluster };
  const ca = cluster['certificate-authority'];
  if (typeof ca === 'string') cluster['certificate-authority'] = resolve(dirname(adminKubeconfig), ca);
  const file = join(mkdtempSync(join(tmpdir(), `devbox-${name}-`)), 'kubeconfig');
  writeFileSync(
    file,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'local', cluster }],
      users: [{ name, user: { token } }],
      contexts: [{ name, context: { cluster: 'local', user: name, namespace } }],
      'current-context': name,
    }),
    { mode: 0o600 },
  );
  return file;
}
