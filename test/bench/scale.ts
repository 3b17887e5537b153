/**
 * `npm run bench:scale`: devbox in namespaces with many Services. Two layouts, each on the local
 * cluster: 10,000 Services in the session's own namespace, and 100 namespaces × 100 Services
 * (the session in the first; the others reached by name, which the sidecar then watches). For
 * each: `upMs` (`devbox up --detach`), `readyMs` (sidecar start → a tunnel up and every Service
 * of its namespace reachable: first DNS answer and first connection), `rssMB` (sidecar),
 * `spotCheck` (100 random Services, by name, from the local container: connected / failed) and
 * `updateMs` (a Service created → the local container connects to its ClusterIP). Targets
 * are printed beside the figures; the exit code is 0 even when one is missed. Everything it
 * creates is removed at the end, also on Ctrl-C. `--json` prints one JSON object on the last
 * line; `--services=N`, `--namespaces=N`, `--per-namespace=N` and `--only=single|multi` shrink it.
 */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { deployShop } from '../../src/demo/shop.js';
import { SIDECAR_BUNDLE_PATH, SIDECAR_CONFIG_PATH } from '../../src/docker/session-spec.js';
import { createKubeClient, type KubeClient, SIDECAR_ACCOUNT } from '../../src/kube/index.js';
import { clusterImages, docker, kubeconfig, kubectl } from '../support/cluster.js';
import { devboxEnv } from '../support/devbox.js';
import { backService, createService, inventoryPodIp } from '../support/services.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const json = process.argv.includes('--json');
const arg = (name: string, fallback: number) =>
  Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const only = process.argv.find((a) => a.startsWith('--only='))?.split('=')[1];

const TARGETS = { readyMs: 2_000, rssMB: 100, failed: 0, updateMs: 1_000 };
const SPOT = 100;
const CREATE_CONCURRENCY = 16;
const RUN_ID = Math.random().toString(36).slice(2, 7);
const DISCOVERY_ROLE = 'devbox-sidecar-discovery';

interface LayoutResult {
  layout: string;
  services: number;
  createMs: number;
  upMs: number;
  readyMs?: number;
  rssMB?: number;
  addressMode?: string;
  spotCheck: { connected: number; failed: number; errors: string[] };
  /** After the spot check: how many other namespaces the sidecar listens on, could not read, or waits for. */
  otherNamespaces?: Record<string, number>;
  updateMs?: number;
  error?: string;
}

const log = (text: string) => process.stderr.write(`bench:scale ${text}\n`);

/** What to remove at the end (namespaces, cluster-scoped objects), in reverse order. */
const cleanups: (() => Promise<void>)[] = [];
async function cleanUp(): Promise<void> {
  for (const step of cleanups.splice(0).reverse())
    await step().catch((e: Error) => log(`cleanup: ${e.message}`));
}
process.once('SIGINT', () => {
  log('interrupted: removing what was created');
  void cleanUp().then(() => process.exit(130));
});

function devbox(args: string[]): { ms: number; ok: boolean; stderr: string } {
  const started = performance.now();
  const r = spawnSync(process.execPath, [cli, ...args], { env: devboxEnv(), encoding: 'utf8' });
  return { ms: Math.round(performance.now() - started), ok: r.status === 0, stderr: r.stderr };
}

async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

async function createNamespace(name: string): Promise<void> {
  await kubectl(['create', 'namespace', name]);
  cleanups.push(async () => void (await kubectl(['delete', 'namespace', name, '--wait=false'])));
}

/** Selector-less Services `s-0`…`s-(n-1)` on port 80; returns their ClusterIPs by name. */
async function createServices(
  client: KubeClient,
  namespace: string,
  n: number,
): Promise<Map<string, string>> {
  const ips = new Map<string, string>();
  await pool(
    Array.from({ length: n }, (_, i) => `s-${i}`),
    CREATE_CONCURRENCY,
    async (name) => void ips.set(name, await createService(client, namespace, name)),
  );
  return ips;
}

async function sidecarStatus(namespace: string): Promise<Record<string, unknown>> {
  const r = await docker([
    'exec',
    `devbox-api.${namespace}-sidecar`,
    'node',
    SIDECAR_BUNDLE_PATH,
    'status',
    SIDECAR_CONFIG_PATH,
  ]);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** From the local container: GET http://<target>/items for each target, 10 at a time. */
async function spotCheck(namespace: string, targets: string[]): Promise<LayoutResult['spotCheck']> {
  const script = `
    const targets = JSON.parse(process.argv[1]);
    let connected = 0, failed = 0; const errors = [];
    let next = 0;
    const one = async (t) => {
      try {
        const r = await fetch('http://' + t + '/items', { signal: AbortSignal.timeout(5000) });
        const b = await r.json();
        if (b.service === 'inventory') connected++; else { failed++; errors.push(t + ': ' + JSON.stringify(b)); }
      } catch (e) { failed++; errors.push(t + ': ' + String(e.cause?.code ?? e.cause ?? e)); }
    };
    Promise.all(Array.from({ length: 10 }, async () => { while (next < targets.length) await one(targets[next++]); }))
      .then(() => console.log(JSON.stringify({ connected, failed, errors: errors.slice(0, 5) })));`;
  const r = await docker(
    ['exec', `devbox-api.${namespace}`, 'node', '-e', script, JSON.stringify(targets)],
    300_000,
  );
  if (!r.stdout.trim()) throw new Error(`spot check printed nothing: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as LayoutResult['spotCheck'];
}

/**
 * Adds a Service and times until the local container connects to its ClusterIP: a poller already
 * running there gets the address on stdin and tries a TCP connect every 10 ms. Before the sidecar
 * redirects the address, the connection leaves the container and is refused; once it does, the
 * sidecar accepts it, whatever the cluster side then does.
 */
async function updateCheck(client: KubeClient, namespace: string): Promise<number> {
  const script = `
    const net = require('node:net');
    const attempt = (ip) => new Promise((resolve) => {
      const s = net.connect({ host: ip, port: 80, timeout: 200 });
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('timeout', () => { s.destroy(); resolve(false); });
      s.once('error', () => resolve(false));
    });
    console.log('polling');
    process.stdin.once('data', async (d) => {
      const ip = String(d).trim();
      const deadline = Date.now() + 20000;
      while (Date.now() < deadline) {
        if (await attempt(ip)) return console.log('ok'), process.exit(0);
        await new Promise((r) => setTimeout(r, 10));
      }
      console.log('timeout'); process.exit(0);
    });`;
  const child = spawn('docker', ['exec', '-i', `devbox-api.${namespace}`, 'node', '-e', script], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  const seen = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => out.includes(word) && resolve();
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        check();
      });
      child.once('close', () => reject(new Error(`poller ended: ${out}`)));
      check();
    });
  await seen('polling');
  const started = performance.now();
  const ip = await createService(client, namespace, 's-added');
  child.stdin.end(`${ip}\n`);
  await seen('\nok');
  return Math.round(performance.now() - started);
}

function countStates(byNamespace: unknown): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const state of Object.values(byNamespace as Record<string, string>))
    counts[state] = (counts[state] ?? 0) + 1;
  return counts;
}

function sample<T>(items: T[], n: number): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

/**
 * One layout: `namespaces` namespaces of `perNamespace` Services, the session in the first.
 * Spot-checked names are `s-i` at home and `s-i.<ns>` elsewhere.
 */
async function runLayout(layout: string, namespaces: number, perNamespace: number): Promise<LayoutResult> {
  const home = `scale-${RUN_ID}-${layout}-0`;
  const names = Array.from({ length: namespaces }, (_, i) => `scale-${RUN_ID}-${layout}-${i}`);
  const client = createKubeClient({ kubeconfig, namespace: home });
  const result: LayoutResult = {
    layout: `${namespaces} × ${perNamespace}`,
    services: namespaces * perNamespace,
    createMs: 0,
    upMs: 0,
    spotCheck: { connected: 0, failed: 0, errors: [] },
  };
  try {
    for (const ns of names) await createNamespace(ns);
    await deployShop(client, home, clusterImages().runtime);
    // With service links every Service of the namespace becomes 7 variables of every new pod:
    // 10,000 of them exceed what a container can start with (as on any cluster).
    await kubectl([
      '-n',
      home,
      'patch',
      'deployment/api',
      '--type=merge',
      '-p',
      '{"spec":{"template":{"spec":{"enableServiceLinks":false}}}}',
    ]);
    if (namespaces > 1) {
      // The sidecar may read the other namespaces' Services (templates/rbac/devbox-sidecar-discovery.yaml).
      const existed = (
        await kubectl(['get', 'clusterrole', DISCOVERY_ROLE, '--ignore-not-found', '-o', 'name'])
      ).trim();
      if (!existed) {
        await kubectl([
          'apply',
          '-f',
          fileURLToPath(new URL('../../../templates/rbac/devbox-sidecar-discovery.yaml', import.meta.url)),
        ]);
        cleanups.push(async () => void (await kubectl(['delete', 'clusterrole', DISCOVERY_ROLE])));
      }
      const binding = `devbox-bench-scale-${RUN_ID}`;
      await kubectl([
        'create',
        'clusterrolebinding',
        binding,
        `--clusterrole=${DISCOVERY_ROLE}`,
        `--serviceaccount=${home}:${SIDECAR_ACCOUNT}`,
      ]);
      cleanups.push(async () => void (await kubectl(['delete', 'clusterrolebinding', binding])));
    }
    const started = performance.now();
    const all: { ns: string; name: string }[] = [];
    for (const ns of names) {
      const ips = await createServices(client, ns, perNamespace);
      for (const name of ips.keys()) all.push({ ns, name });
      log(`${ns}: ${ips.size} Services`);
    }
    result.createMs = Math.round(performance.now() - started);
    const podIp = await inventoryPodIp(home);
    const spot = sample(all, SPOT);
    for (const s of spot) await backService(client, s.ns, s.name, podIp);

    log(`${layout}: devbox up api`);
    const up = devbox(['up', 'api', '-n', home, '--detach']);
    result.upMs = up.ms;
    cleanups.push(async () => void devbox(['down', 'api', '-n', home]));
    if (!up.ok) throw new Error(`devbox up failed:\n${up.stderr}`);

    const status = await sidecarStatus(home);
    result.readyMs = status.readyAfterMs as number | undefined;
    result.addressMode = status.addressMode as string;
    result.spotCheck = await spotCheck(
      home,
      spot.map((s) => (s.ns === home ? s.name : `${s.name}.${s.ns}`)),
    );
    result.otherNamespaces = countStates((await sidecarStatus(home)).otherNamespaces);
    result.updateMs = await updateCheck(client, home);
    result.rssMB = Math.round(((await sidecarStatus(home)).rssBytes as number) / 2 ** 20);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    client.close();
    await cleanUp();
  }
  return result;
}

function row(r: LayoutResult): string {
  const mark = (ok: boolean) => (ok ? '✓' : '✗');
  const cell = (v: number | undefined, target: number) =>
    v === undefined ? 'n/a' : `${v} ${mark(v <= target)} (≤ ${target})`;
  return [
    `${r.layout} Services (${r.addressMode ?? '?'}), created in ${r.createMs} ms`,
    `  upMs      ${r.upMs}`,
    `  readyMs   ${cell(r.readyMs, TARGETS.readyMs)}`,
    `  rssMB     ${cell(r.rssMB, TARGETS.rssMB)}`,
    `  spotCheck ${r.spotCheck.connected} connected, ${r.spotCheck.failed} failed ${mark(r.spotCheck.failed <= TARGETS.failed)} (target ${TARGETS.failed} failed)${r.spotCheck.errors.length ? `: ${r.spotCheck.errors.join('; ')}` : ''}`,
    ...(r.otherNamespaces ? [`  other namespaces ${JSON.stringify(r.otherNamespaces)}`] : []),
    `  updateMs  ${cell(r.updateMs, TARGETS.updateMs)}`,
    ...(r.error ? [`  error     ${r.error}`] : []),
  ].join('\n');
}

async function main(): Promise<void> {
  const results: LayoutResult[] = [];
  if (only !== 'multi') results.push(await runLayout('single', 1, arg('services', 10_000)));
  if (only !== 'single')
    results.push(await runLayout('multi', arg('namespaces', 100), arg('per-namespace', 100)));
  process.stdout.write(`${results.map(row).join('\n\n')}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ targets: TARGETS, results })}\n`);
}

main().then(
  () => process.exit(0),
  async (err) => {
    process.stderr.write(`${(err as Error).stack ?? err}\n`);
    await cleanUp();
    process.exit(0);
  },
);
