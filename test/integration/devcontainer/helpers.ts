/**
 * What the dev container tests share: a shop whose `api` has a name of the
 * test's own (so parallel runs never share container names), a dev container
 * image built from the local runtime and busybox images (a shell, Node.js),
 * throw-away projects, and the devbox CLI run with extra environment.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { shopManifests } from '../../../src/demo/shop.js';
import { findOnPath, writeDockerWrapper } from '../../../src/devcontainer/cli.js';
import { createKubeClient, type Workload } from '../../../src/kube/index.js';
import { waitForRollout } from '../../../src/session/rollout.js';
import { clusterImages, docker, kubeconfig, kubectl } from '../../support/cluster.js';
import { devboxEnv, type RunAs, type RunResult } from '../../support/devbox.js';
import { type Developer, developerIn } from '../../support/developer.js';

const run = promisify(execFile);
export const cliPath = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));
/** The repository root (tests run from dist/test/…). */
export const repoRoot = fileURLToPath(new URL('../../../../', import.meta.url));
export const devcontainerBin = join(repoRoot, 'node_modules', '.bin', 'devcontainer');

/** A short random suffix for names of the test's own. */
export const suffix = () => Math.random().toString(36).slice(2, 7);

/**
 * The sample shop, with `api` renamed to `apiName` (its Deployment, Service,
 * labels, and storefront's requests), and the user devbox runs as: one holding
 * only the developer Role (see support/developer.ts).
 */
export async function deployShopAs(namespace: string, apiName: string): Promise<Developer> {
  const image = clusterImages().runtime;
  const manifests = (await shopManifests(image)) as Record<string, any>[];
  for (const m of manifests) {
    if (m.metadata.name === 'api' && (m.kind === 'Deployment' || m.kind === 'Service'))
      m.metadata.name = apiName;
    if (m.kind === 'Deployment' && m.metadata.name === apiName) {
      m.metadata.labels = { app: apiName };
      m.spec.selector.matchLabels.app = apiName;
      m.spec.template.metadata.labels.app = apiName;
    }
    if (m.kind === 'Service' && m.metadata.name === apiName) m.spec.selector.app = apiName;
    if (m.kind === 'Deployment' && m.metadata.name === 'storefront') {
      const c = m.spec.template.spec.containers[0];
      c.command = c.command.map((s: string) => s.replace('http://api/', `http://${apiName}/`));
    }
  }
  const client = createKubeClient({ kubeconfig, namespace });
  try {
    for (const m of manifests) {
      await client.create(m.kind, { ...m, metadata: { ...m.metadata, namespace } } as never);
    }
    for (const m of manifests) {
      if (m.kind !== 'Deployment' && m.kind !== 'StatefulSet') continue;
      const workload = { ...(await client.get(m.kind, namespace, m.metadata.name)), kind: m.kind };
      await waitForRollout(client, workload as Workload, { timeoutMs: 180_000 });
    }
  } finally {
    client.close();
  }
  return developerIn(namespace);
}

/**
 * Waits until the workload's rollout is complete. A restore (down, or the undo
 * of a failed up) starts a rollout whose status updates would race the next
 * `devbox up`'s write of the workload.
 */
export async function settled(namespace: string, workload: string): Promise<void> {
  await kubectl(['-n', namespace, 'rollout', 'status', `deployment/${workload}`, '--timeout=120s']);
}

/** What an in-cluster client (the inventory pod) gets from `http://<service>/`. */
export async function askFromCluster(namespace: string, service: string): Promise<Record<string, unknown>> {
  const out = await kubectl([
    '-n',
    namespace,
    'exec',
    'deploy/inventory',
    '--',
    'node',
    '-e',
    `fetch('http://${service}/').then((r) => r.text()).then((t) => console.log(t.trim()), (e) => console.log(JSON.stringify({ error: String(e.cause || e) })))`,
  ]);
  return JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Record<string, unknown>;
}

/** Polls `askFromCluster` until `check` holds (the rollout of the agent and endpoint updates take a moment). */
export async function clusterHears(
  namespace: string,
  service: string,
  check: (answer: Record<string, unknown>) => boolean,
  timeoutMs = 60_000,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, unknown> = {};
  while (Date.now() < deadline) {
    last = await askFromCluster(namespace, service).catch((e: Error) => ({ error: e.message }));
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error(`service ${service} never answered as expected; last answer: ${JSON.stringify(last)}`);
}

/**
 * A dev container image with a shell and Node.js (busybox plus the runtime
 * image's Node), built once per pair of source images, and a `node` user.
 */
export async function devImage(): Promise<string> {
  const { runtime, busybox } = clusterImages();
  const tag = `devbox-devcontainer-test:${createHash('sha256').update(`${runtime}\n${busybox}\n3`).digest('hex').slice(0, 12)}`;
  if ((await docker(['image', 'inspect', tag])).code === 0) return tag;
  const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-dcimg-'));
  try {
    await fs.writeFile(
      join(dir, 'Dockerfile'),
      `FROM ${runtime} AS node
FROM ${busybox}
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /lib /lib
COPY --from=node /lib64 /lib64
COPY --from=node /etc/ssl /etc/ssl
RUN mkdir -p /usr/local/share /usr/local/lib /usr/bin /home/node && ln -sf /bin/env /usr/bin/env && (adduser -D -u 1000 -h /home/node node 2>/dev/null || true)
`,
    );
    const built = await docker(['build', '--force-rm', '-q', '-t', tag, dir], 300_000);
    if (built.code !== 0) throw new Error(`building ${tag} failed: ${built.stderr}`);
    return tag;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Removes the images the Dev Containers CLI built for the project folder `dir` (`vsc-<folder>-…`). */
export async function removeBuiltImages(dir: string): Promise<void> {
  const prefix = `vsc-${basename(dir).toLowerCase()}-`;
  const { stdout } = await docker(['images', '--format', '{{.Repository}}:{{.Tag}}']);
  const mine = stdout.split('\n').filter((ref) => ref.startsWith(prefix));
  if (mine.length) await docker(['rmi', '-f', ...mine]);
}

/** A project folder with the given files (paths relative to it); `remove` deletes it and the images built for it. */
export async function project(
  files: Record<string, string>,
): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-dc-project-'));
  for (const [path, content] of Object.entries(files)) {
    await fs.mkdir(dirname(join(dir, path)), { recursive: true });
    await fs.writeFile(join(dir, path), content);
  }
  return {
    dir,
    remove: async () => {
      await removeDevcontainersOf(dir);
      await removeBuiltImages(dir);
      await fs.rm(dir, { recursive: true, force: true });
    },
  };
}

/** A local Feature that writes its option into /usr/local/share/hello (proves features and their options run). */
export const helloFeature = {
  'devcontainer-feature.json': JSON.stringify({
    id: 'hello',
    version: '1.0.0',
    name: 'Hello',
    options: { greeting: { type: 'string', default: 'hi' } },
    containerEnv: { HELLO_FEATURE: '1' },
  }),
  'install.sh': '#!/bin/sh\nset -e\nmkdir -p /usr/local/share\necho "$GREETING" > /usr/local/share/hello\n',
};

/** Runs the devbox CLI (as the user would) with extra environment; stdout/stderr collected. */
export function devboxWith(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string; as?: RunAs } = {},
): Promise<RunResult> {
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: { ...devboxEnv(options.as), ...options.env },
    cwd: options.cwd ?? process.cwd(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, options.timeoutMs ?? 300_000);
}

let scratch: Promise<{ wrapper: string; tmp: string }> | undefined;
/**
 * A docker wrapper adding --force-rm to legacy builds, as devbox uses (failed
 * test builds leave no container), and a TMPDIR for the CLI's copies of
 * Features; both removed when the test process exits.
 */
function cliScratch(): Promise<{ wrapper: string; tmp: string }> {
  scratch ??= (async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-dc-cli-'));
    process.once('exit', () => void rmSync(dir, { recursive: true, force: true }));
    await fs.mkdir(join(dir, 'tmp'));
    return {
      wrapper: await writeDockerWrapper(dir, (await findOnPath('docker')) ?? 'docker'),
      tmp: join(dir, 'tmp'),
    };
  })();
  return scratch;
}

/** Removes the containers the Dev Containers CLI made for `folder` (those it left after a failure included). */
export async function removeDevcontainersOf(folder: string): Promise<void> {
  const { stdout } = await docker(['ps', '-aq', '--filter', `label=devcontainer.local_folder=${folder}`]);
  const ids = stdout.split('\n').filter(Boolean);
  if (ids.length) await docker(['rm', '-f', ...ids]);
}

/** Runs the Dev Containers CLI itself, as an editor would. */
export async function devcontainer(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<RunResult> {
  const { wrapper, tmp } = await cliScratch();
  const full = args.includes('--docker-path') ? args : [...args, '--docker-path', wrapper];
  const child = spawn(devcontainerBin, full, {
    env: { ...devboxEnv(), TMPDIR: tmp, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return collect(child, options.timeoutMs ?? 300_000);
}

function collect(child: ChildProcess, timeoutMs: number): Promise<RunResult> {
  const out = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (out.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out.stderr += d.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...out });
    });
  });
}

/** The result line of `devcontainer up`. */
export function upOutcome(stdout: string): Record<string, any> {
  const line = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{') && l.includes('outcome'));
  return line ? (JSON.parse(line) as Record<string, any>) : {};
}

/** `docker exec` of a shell command, its stdout trimmed; fails the test on a non-zero exit. */
export async function execIn(
  container: string,
  script: string,
  dockerEnv: NodeJS.ProcessEnv = {},
): Promise<string> {
  const { stdout } = await run('docker', ['exec', container, 'sh', '-c', script], {
    env: { ...process.env, ...dockerEnv },
    timeout: 60_000,
  }).catch((err: { stderr?: string; message: string }) => {
    throw new Error(`docker exec ${container} sh -c '${script}' failed: ${err.stderr ?? err.message}`);
  });
  return stdout.trim();
}

/** Containers (any state) carrying devbox labels of `namespace`, on the engine of `dockerEnv`. */
export async function sessionContainers(
  namespace: string,
  dockerEnv: NodeJS.ProcessEnv = {},
): Promise<string[]> {
  const { stdout } = await run('docker', ['ps', '-aq', '--filter', `label=devbox.namespace=${namespace}`], {
    env: { ...process.env, ...dockerEnv },
  });
  return stdout.split('\n').filter(Boolean);
}

/** Every container id on the engine (to show nothing new was left behind). */
export async function allContainers(dockerEnv: NodeJS.ProcessEnv = {}): Promise<Set<string>> {
  const { stdout } = await run('docker', ['ps', '-aq', '--no-trunc'], {
    env: { ...process.env, ...dockerEnv },
  });
  return new Set(stdout.split('\n').filter(Boolean));
}

/** Volumes carrying a devbox session label. */
export async function sessionVolumes(dockerEnv: NodeJS.ProcessEnv = {}): Promise<Set<string>> {
  const { stdout } = await run('docker', ['volume', 'ls', '-q', '--filter', 'label=devbox.session'], {
    env: { ...process.env, ...dockerEnv },
  });
  return new Set(stdout.split('\n').filter(Boolean));
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}
