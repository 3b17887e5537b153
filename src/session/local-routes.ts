/**
 * The local short-circuit between the sessions of one `devbox up`: each sidecar learns the
 * Services the *other* sessions took over (ClusterIP:port) and the address of their container on
 * the Docker network, so a call from one local container to another's Service stays on this
 * engine. The sidecars dial those addresses themselves (src/sidecar/local-routes.ts); everything
 * else still goes to the cluster.
 */
import {
  createDockerClient,
  type DockerClient,
  SIDECAR_BUNDLE_PATH,
  SIDECAR_CONFIG_PATH,
} from '../docker/index.js';
import { createKubeClient } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import type { LocalRoute } from '../sidecar/local-routes.js';
import { DevboxError, errorText } from '../util/errors.js';
import type { UpResult } from './up.js';

/**
 * Whether every call from `from`'s container to `to`'s Services would reach `to` through the
 * cluster anyway: `to` takes all requests (a global session), or only those carrying a personal
 * key that `from` carries too. A session filtered otherwise, or a mirror, gets only some requests
 * (or copies): its callers keep going through the cluster.
 */
export function takesAllCallsOf(from: UpResult, to: UpResult): boolean {
  if (to.route.mode === 'global') return true;
  const personalOnly =
    to.route.mode === 'filtered' &&
    to.route.personal &&
    !to.route.pathPrefix &&
    to.route.headers.length === 0;
  return Boolean(personalOnly && to.personalKey && to.personalKey === from.personalKey);
}

/** The routes each session's sidecar gets: the Services the other sessions take all its calls for. */
export function routesBetween(
  sessions: readonly { result: UpResult; address: string | undefined }[],
  clusterIps: ReadonlyMap<string, string>,
): Map<string, LocalRoute[]> {
  const offered = sessions.map(({ result, address }) =>
    address
      ? result.intercepted.flatMap((p): LocalRoute[] => {
          const service = `${result.namespace}/${p.service}`;
          const clusterIp = clusterIps.get(service);
          if (p.protocol.toUpperCase() !== 'TCP' || !clusterIp) return [];
          return [
            {
              service,
              clusterIp,
              port: p.port,
              to: { host: address, port: p.appPort },
              container: result.containers.service,
            },
          ];
        })
      : [],
  );
  return new Map(
    sessions.map(({ result: from }, i) => [
      from.session,
      offered.flatMap((routes, j) => (j !== i && takesAllCallsOf(from, sessions[j]!.result) ? routes : [])),
    ]),
  );
}

/**
 * Sets every session's local routes. Returns warnings: a session whose sidecar could not take
 * them still works, its calls going through the cluster.
 */
export async function connectLocalSessions(
  target: KubeTarget,
  results: readonly UpResult[],
): Promise<string[]> {
  if (results.length < 2) return [];
  const docker = createDockerClient();
  const sessions = await Promise.all(
    results.map(async (result) => ({
      result,
      address: (await docker.inspectContainer(result.containers.sidecar))?.ipAddress,
    })),
  );
  const routes = routesBetween(sessions, await clusterIpsOf(target, results));
  const warnings: string[] = [];
  await Promise.all(
    results.map(async (result) => {
      try {
        await setRoutes(docker, result.containers.sidecar, routes.get(result.session) ?? []);
      } catch (err) {
        warnings.push(
          `${result.workload} calls the other local workloads through the cluster: ${errorText(err)}`,
        );
      }
    }),
  );
  return warnings;
}

/** `namespace/name` → ClusterIP of the Services the sessions took over (headless ones have none). */
async function clusterIpsOf(target: KubeTarget, results: readonly UpResult[]): Promise<Map<string, string>> {
  const ips = new Map<string, string>();
  const client = createKubeClient(target);
  try {
    for (const namespace of new Set(results.map((r) => r.namespace))) {
      for (const s of (await client.list('Service', namespace)).items) {
        const ip = s.spec?.clusterIP;
        if (ip && ip !== 'None') ips.set(`${namespace}/${s.metadata?.name}`, ip);
      }
    }
  } finally {
    client.close();
  }
  return ips;
}

async function setRoutes(docker: DockerClient, sidecar: string, routes: LocalRoute[]): Promise<void> {
  const result = await docker.exec(
    sidecar,
    ['node', SIDECAR_BUNDLE_PATH, 'local-routes', SIDECAR_CONFIG_PATH, JSON.stringify(routes)],
    { timeoutMs: 10_000 },
  );
  if (result.exitCode !== 0)
    throw new DevboxError(
      'TUNNEL',
      `its sidecar refused the routes: ${(result.stdout || result.stderr).trim()}`,
    );
}
