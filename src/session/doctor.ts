/**
 * `devbox doctor`: everything `up` needs, checked without changing anything,
 * each finding with what to do about it.
 */
import { arch, platform } from 'node:os';
import { createDockerClient } from '../docker/index.js';
import {
  createKubeClient,
  describePermission,
  type KubeClient,
  missingPermissions,
  RBAC_TEMPLATE,
  SIDECAR_ACCOUNT,
} from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { errorText, isDevboxError } from '../util/errors.js';
import { mintSidecarToken, sidecarLacks } from './sidecar-account.js';

export interface Finding {
  check: string;
  status: 'ok' | 'warn' | 'fail';
  detail: string;
  hint?: string;
}

export async function doctor(options: { target: KubeTarget; agentImage: string }): Promise<Finding[]> {
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);
  const [major] = process.versions.node.split('.').map(Number);
  add({
    check: 'node',
    status: major! >= 20 ? 'ok' : 'fail',
    detail: `Node.js ${process.versions.node}`,
    ...(major! >= 20 ? {} : { hint: 'install Node.js 20 or newer' }),
  });

  const docker = createDockerClient();
  try {
    await docker.ping({ timeoutMs: 5000 });
    const version = await docker.version();
    add({ check: 'docker', status: 'ok', detail: `engine ${version.version} at ${docker.endpoint.host}` });
    const local =
      platform() === 'linux' && (version.arch === arch() || (version.arch === 'amd64' && arch() === 'x64'));
    add({
      check: 'sidecar image',
      status: local ? 'ok' : 'warn',
      detail: local ? "can be built from this machine's Node.js" : `engine is ${version.os}/${version.arch}`,
      ...(local
        ? {}
        : {
            hint: 'the runtime image is built from the local node binary; use a Linux host of the same architecture',
          }),
    });
  } catch (err) {
    add({
      check: 'docker',
      status: 'fail',
      detail: errorText(err),
      hint: isDevboxError(err) && err.hint ? err.hint : 'start Docker or set DOCKER_HOST',
    });
  }

  let client: ReturnType<typeof createKubeClient> | undefined;
  try {
    client = createKubeClient(options.target);
    const version = (await client.request('GET', '/version', { timeoutMs: 10_000 })) as {
      gitVersion?: string;
    };
    add({
      check: 'cluster',
      status: 'ok',
      detail: `${client.cluster.server} (context ${client.cluster.context}, ${version.gitVersion ?? 'unknown version'})`,
    });
    const namespace = client.namespace;
    const missing = await missingPermissions(client, namespace, 'up');
    add({
      check: 'permissions',
      status: missing.length ? 'fail' : 'ok',
      detail: missing.length
        ? `missing in ${namespace}: ${missing.map(describePermission).join(', ')}`
        : `everything devbox up needs in ${namespace}`,
      ...(missing.length
        ? { hint: 'bind the Role in templates/rbac/devbox-developer-role.yaml to your user' }
        : {}),
    });
    add(await sidecarAccountFinding(client, options.target, namespace));
  } catch (err) {
    add({
      check: 'cluster',
      status: 'fail',
      detail: errorText(err),
      hint: isDevboxError(err) && err.hint ? err.hint : 'check --context / --kubeconfig',
    });
  } finally {
    client?.close();
  }
  add({
    check: 'agent image',
    status: 'ok',
    detail: `${options.agentImage} (set --agent-image or DEVBOX_AGENT_IMAGE)`,
  });
  return findings;
}

/**
 * Asked as the sidecar itself, as `up` does: a token minted for its account (a token is
 * no stored object, so nothing changes), then what that token may do.
 */
async function sidecarAccountFinding(
  client: KubeClient,
  target: KubeTarget,
  namespace: string,
): Promise<Finding> {
  const check = 'sidecar account';
  const hint = `ask an admin to apply ${RBAC_TEMPLATE} in ${namespace}`;
  try {
    const minted = await mintSidecarToken(client, namespace, 600);
    const lacking = await sidecarLacks(target, namespace, minted.token);
    return lacking.length
      ? {
          check,
          status: 'fail',
          detail: `serviceaccount/${SIDECAR_ACCOUNT} may not: ${lacking.map(describePermission).join(', ')}`,
          hint,
        }
      : { check, status: 'ok', detail: `serviceaccount/${SIDECAR_ACCOUNT} holds the sidecar's Role` };
  } catch (err) {
    return {
      check,
      status: 'fail',
      detail: errorText(err),
      hint: isDevboxError(err, 'FORBIDDEN')
        ? `you may not mint its tokens (see permissions above); ${hint}`
        : hint,
    };
  }
}
