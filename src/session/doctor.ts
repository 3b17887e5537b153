/**
 * `devbox doctor`: everything `up` needs, checked without changing anything,
 * each finding with what to do about it.
 */
import { arch, platform } from 'node:os';
import { createDockerClient } from '../docker/index.js';
import { createKubeClient, describePermission, missingPermissions, SIDECAR_ACCOUNT } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { errorText, isDevboxError } from '../util/errors.js';

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
    const account = await client.get('ServiceAccount', namespace, SIDECAR_ACCOUNT).catch(() => undefined);
    add({
      check: 'sidecar account',
      status: account ? 'ok' : 'warn',
      detail: account
        ? `serviceaccount/${SIDECAR_ACCOUNT} present`
        : `serviceaccount/${SIDECAR_ACCOUNT} missing in ${namespace}`,
      ...(account
        ? {}
        : {
            hint: 'devbox up creates it if you may; otherwise apply templates/rbac/devbox-developer-role.yaml',
          }),
    });
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
