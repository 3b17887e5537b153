/**
 * `npm run demo`: devbox's main job with nothing set up. Uses the current kube
 * context, or starts the local cluster when there is none; deploys the sample
 * shop; runs `devbox up api`; shows the in-cluster storefront's requests being
 * answered by the local container; then `devbox down api` puts it all back.
 * Then the dev loop: an edit of the api's source answers the storefront's next request.
 * Last, a personal session of `api`: the storefront's own requests stay with the pod while
 * one carrying the key reaches the local container; then a share link to it.
 */
import { type ChildProcess, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createDockerClient } from '../docker/index.js';
import { createKubeClient, type KubeClient, labelSelectorString } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import type { ShareResult } from '../session/share.js';
import { DEFAULT_AGENT_IMAGE, settings } from '../settings/index.js';
import { DevboxError, errorText } from '../util/errors.js';
import { createProgress } from '../util/progress.js';
import { showDevLoop } from './loop.js';
import { checkShare, startPortForward } from './share-link.js';
import { deployShop } from './shop.js';

const NAMESPACE = settings().demoNamespace;
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const cli = join(repo, 'dist/src/cli/main.js');
const clusterDir = settings().clusterDir;
const progress = createProgress(process.stderr);
const say = (text: string) => process.stdout.write(`\n${text}\n`);

interface Cluster {
  target: KubeTarget;
  env: NodeJS.ProcessEnv;
  image: string;
  local: boolean;
}

async function reachable(target: KubeTarget): Promise<boolean> {
  try {
    const client = createKubeClient(target);
    try {
      await client.request('GET', '/version', { timeoutMs: 5000 });
      return true;
    } finally {
      client.close();
    }
  } catch {
    return false;
  }
}

async function pickCluster(): Promise<Cluster> {
  const localKubeconfig = join(clusterDir, 'kubeconfig');
  const usingLocal = process.env.KUBECONFIG === localKubeconfig;
  if (!usingLocal && (await reachable({}))) {
    say('Using your current kube context.');
    return { target: {}, env: {}, image: DEFAULT_AGENT_IMAGE, local: false };
  }
  if (!(await reachable({ kubeconfig: localKubeconfig }))) {
    say('No reachable cluster in your kubeconfig: starting the local one (npm run cluster:up).');
    const result = spawnSync('bash', [join(repo, 'test/cluster/up.sh')], { stdio: 'inherit' });
    if (result.status !== 0) {
      throw new DevboxError('NO_CLUSTER', 'the local cluster did not start', {
        hint: `read the logs in ${join(clusterDir, 'logs')}, or point KUBECONFIG at a cluster of yours`,
      });
    }
  }
  const images = JSON.parse(readFileSync(join(clusterDir, 'images.json'), 'utf8')) as { runtime: string };
  return {
    target: { kubeconfig: localKubeconfig },
    env: { KUBECONFIG: localKubeconfig, DEVBOX_AGENT_IMAGE: images.runtime },
    image: images.runtime,
    local: true,
  };
}

/** Runs `devbox args… -o json`, showing its progress, and returns its result. */
function devboxJson<T>(cluster: Cluster, args: string[]): T {
  process.stdout.write(`\n$ devbox ${args.join(' ')}\n`);
  const result = spawnSync(process.execPath, [cli, ...args, '-o', 'json'], {
    stdio: ['inherit', 'pipe', 'inherit'],
    env: { ...process.env, ...cluster.env },
  });
  if (result.status !== 0)
    throw new DevboxError('INTERNAL', `devbox ${args[0]} failed (exit ${result.status})`);
  return JSON.parse(result.stdout.toString()) as T;
}

function devbox(cluster: Cluster, args: string[]): void {
  process.stdout.write(`\n$ devbox ${args.join(' ')}\n`);
  const result = spawnSync(process.execPath, [cli, ...args], {
    stdio: 'inherit',
    env: { ...process.env, ...cluster.env },
  });
  if (result.status !== 0)
    throw new DevboxError('INTERNAL', `devbox ${args[0]} failed (exit ${result.status})`);
}

/** The storefront's newest log line that satisfies `match`, waiting up to `timeoutMs`. */
async function storefrontSays(client: KubeClient, match: (line: string) => boolean, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  const selector = labelSelectorString({ matchLabels: { app: 'storefront' } });
  for (;;) {
    const pods = (await client.list('Pod', NAMESPACE, { labelSelector: selector })).items;
    const pod = pods.find((p) => p.status?.phase === 'Running');
    if (pod) {
      const log = await client.request(
        'GET',
        `/api/v1/namespaces/${NAMESPACE}/pods/${pod.metadata!.name}/log`,
        {
          query: { sinceSeconds: 2 },
        },
      );
      const line = String(log ?? '')
        .trim()
        .split('\n')
        .reverse()
        .find(match);
      if (line) return line;
    }
    if (Date.now() > deadline) throw new DevboxError('TIMEOUT', 'the storefront logged nothing expected');
    await sleep(500);
  }
}

async function main(): Promise<void> {
  const cluster = await pickCluster();
  const docker = createDockerClient();
  await progress.step('Checking Docker', () => docker.ping({ timeoutMs: 10_000 }));
  if (!(await docker.imageExists(cluster.image))) {
    throw new DevboxError('NOT_FOUND', `the sample's image ${cluster.image} is not in your Docker engine`, {
      hint: `docker pull ${cluster.image}`,
    });
  }
  const client = createKubeClient({ ...cluster.target, namespace: NAMESPACE });
  try {
    await progress.step(`Deploying the sample shop into namespace ${NAMESPACE}`, () =>
      deployShop(client, NAMESPACE, cluster.image),
    );
    const before = await storefrontSays(client, (l) => l.includes('"answeredBy":"pod"'), 60_000);
    say(`The storefront pod calls http://api/ every second. Now a pod answers:\n  ${before}`);

    devbox(cluster, ['up', 'api', '-n', NAMESPACE, '--detach']);
    const local = await storefrontSays(client, (l) => l.includes('"answeredBy":"local container"'), 60_000);
    say(
      `The same in-cluster requests now reach the container on this machine, which calls\n` +
        `inventory through cluster DNS and reads the pod's ConfigMap, Secret and env:\n  ${local}`,
    );
    say(
      'Try it yourself while it runs:\n' +
        `  docker exec devbox-api.${NAMESPACE} node -e "fetch('http://inventory/items').then(r => r.text()).then(console.log)"\n` +
        '  devbox status',
    );

    devbox(cluster, ['down', 'api', '-n', NAMESPACE]);
    const after = await storefrontSays(client, (l) => l.includes('"answeredBy":"pod"'), 60_000);
    say(
      `After devbox down the pod answers again, and the Deployment and Service are as they were:\n  ${after}`,
    );
    await showDevLoop({
      cli,
      env: cluster.env,
      namespace: NAMESPACE,
      image: cluster.image,
      storefrontSays: (match, timeoutMs) => storefrontSays(client, match, timeoutMs),
      say,
    });
    await showShareLink(cluster, client);
    say(
      `Next: run your own workload with \`devbox up <name> -n <namespace>\` (see devbox up --help).\n` +
        `Remove the sample with: kubectl delete namespace ${NAMESPACE}` +
        (cluster.local ? ` --kubeconfig ${cluster.env.KUBECONFIG}` : ''),
    );
  } finally {
    client.close();
  }
}

/** What `api` answers to a request sent from inside the session's network (through the cluster), with these headers. */
function askApi(container: string, headers: Record<string, string>): string {
  const script =
    'fetch(process.argv[2], { headers: JSON.parse(process.argv[1]) }).then((r) => r.json()).then((b) => console.log(b.where))';
  // By its cluster name: inside the session, the bare name `api` is the container's own hostname.
  const url = `http://api.${NAMESPACE}.svc.cluster.local/`;
  const result = spawnSync(
    'docker',
    ['exec', container, 'node', '-e', script, JSON.stringify(headers), url],
    {
      encoding: 'utf8',
    },
  );
  if (result.status !== 0) throw new DevboxError('INTERNAL', `asking api failed: ${result.stderr.trim()}`);
  return result.stdout.trim();
}

/**
 * In a personal session the storefront's own requests (no key) stay with the pod, while a
 * request through the cluster that carries the session's key reaches the local container.
 */
async function showPersonalRouting(
  client: KubeClient,
  session: { personalKey: string; curl?: string; containers: { service: string } },
): Promise<void> {
  // Past the moment the session connected.
  await sleep(3000);
  const own = await storefrontSays(client, (l) => l.includes('"answeredBy"'), 30_000);
  if (!own.includes('"answeredBy":"pod"'))
    throw new DevboxError('INTERNAL', `the storefront's own requests left the pod: ${own}`);
  const withKey = askApi(session.containers.service, { 'x-devbox-session': session.personalKey });
  const withoutKey = askApi(session.containers.service, {});
  say(
    `A personal session takes only the requests that carry its key. The storefront's own requests\n` +
      `stay with the pod:\n  ${own}\n` +
      `A request to api through the cluster with the key is answered by "${withKey}", without it by "${withoutKey}".\n` +
      `From any pod: ${session.curl ?? 'curl -H "x-devbox-session: <key>" http://api/'}`,
  );
  if (withKey !== 'local container' || withoutKey !== 'pod')
    throw new DevboxError('INTERNAL', 'the personal session did not route by its key');
}

/**
 * A personal session takes only the requests that carry its key; `devbox share` makes a link that
 * gives a browser that key. The demo checks the link as a browser would, then (on a terminal)
 * keeps it working until Enter.
 */
async function showShareLink(cluster: Cluster, client: KubeClient): Promise<void> {
  const session = devboxJson<{ personalKey: string; curl?: string; containers: { service: string } }>(
    cluster,
    ['up', 'api', '-n', NAMESPACE, '--personal', '--detach'],
  );
  let forward: ChildProcess | undefined;
  try {
    await showPersonalRouting(client, session);
    const shared = devboxJson<ShareResult>(cluster, ['share', 'api', '-n', NAMESPACE]);
    if (shared.entry.kind === 'port-forward') {
      const kubectl = cluster.local ? join(clusterDir, 'bin', 'kubectl') : 'kubectl';
      forward = await startPortForward(kubectl, shared.entry.command, shared.entry.url, cluster.env);
    }
    const seen = await checkShare(shared);
    say(
      `A personal session answers only requests that carry its key. A browser that opened this link\n` +
        `carries it (a cookie for this host) and is answered by "${seen.withLink}"; any other by "${seen.without}":\n` +
        `  ${shared.link}` +
        (shared.entry.kind === 'port-forward'
          ? `\n(served through: kubectl ${shared.entry.command.join(' ')})`
          : ''),
    );
    if (process.stdin.isTTY) {
      say(
        'Open the link in your browser, and the same address without it in a private window. Press Enter to end.',
      );
      await once(process.stdin, 'data');
      process.stdin.pause();
    }
  } finally {
    forward?.kill();
    devbox(cluster, ['down', 'api', '-n', NAMESPACE]);
  }
}

main().catch((err) => {
  process.stderr.write(`error: ${errorText(err)}\n`);
  if (err instanceof DevboxError && err.hint) process.stderr.write(`  ${err.hint}\n`);
  process.exitCode = 1;
});
