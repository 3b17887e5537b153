/**
 * `npm run bench:up`: how long `devbox up --detach` takes until an in-cluster
 * request to the workload's Service is answered by the local container, with
 * the agent not yet in the pods (cold) and already there (warm, after
 * `devbox down --keep-agent`), and how long `devbox down` takes. Runs on the
 * local cluster; requests go to the Service's ClusterIP from the node, through
 * kube-proxy, as any in-cluster client's would: one fresh connection per request,
 * and beside it a pooled client asking every 100 ms on one kept-alive connection,
 * which has to be handed over to the session. `--json` prints one JSON object on the
 * last line.
 */
import { spawn, spawnSync } from 'node:child_process';
import { Agent, get } from 'node:http';
import { fileURLToPath } from 'node:url';
import { deployShop } from '../../src/demo/shop.js';
import { createKubeClient } from '../../src/kube/index.js';
import { clusterImages, kubeconfig, kubectl, testNamespace } from '../support/cluster.js';
import { devboxEnv } from '../support/devbox.js';

const ROUNDS = 3;
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const json = process.argv.includes('--json');

function devbox(args: string[]): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, [cli, ...args], { env: devboxEnv(), encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`devbox ${args.join(' ')} failed:\n${result.stderr}`);
  return performance.now() - started;
}

function whoAnswers(ip: string, agent: Agent | false = false): Promise<string> {
  return new Promise((resolve) => {
    const req = get({ host: ip, port: 80, path: '/', timeout: 300, agent }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(/"where":"([^"]+)"/.exec(body)?.[1] ?? 'unknown'));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve('error'));
  });
}

/** Milliseconds from `since` until the Service answers from `where` (polled every `everyMs`, 120 s at most). */
async function answeredFrom(
  ip: string,
  where: string,
  since: number,
  { agent = false, everyMs = 10 }: { agent?: Agent | false; everyMs?: number } = {},
): Promise<number> {
  const deadline = since + 120_000;
  while (performance.now() < deadline) {
    if ((await whoAnswers(ip, agent)) === where) return performance.now() - since;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`service never answered from ${where}`);
}

/**
 * Starts `devbox up --detach` and polls the Service meanwhile, so the first local answer is timed
 * as it happens, for new connections and for a pooled client's kept-alive one.
 */
async function upUntilLocal(ns: string, ip: string): Promise<{ fresh: number; keptAlive: number }> {
  const pool = new Agent({ keepAlive: true, maxSockets: 1 });
  await whoAnswers(ip, pool);
  const started = performance.now();
  const child = spawn(process.execPath, [cli, 'up', 'api', '-n', ns, '--detach'], { env: devboxEnv() });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve, reject) =>
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`devbox up failed:\n${stderr}`)))),
  );
  const [, fresh, keptAlive] = await Promise.all([
    exited,
    answeredFrom(ip, 'local container', started),
    answeredFrom(ip, 'local container', started, { agent: pool, everyMs: 100 }),
  ]);
  pool.destroy();
  return { fresh, keptAlive };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const ns = await testNamespace('bench-up');
  try {
    const client = createKubeClient({ kubeconfig, namespace: ns.name });
    await deployShop(client, ns.name, clusterImages().runtime);
    client.close();
    const ip = (
      await kubectl(['-n', ns.name, 'get', 'svc', 'api', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    const cold: number[] = [];
    const warm: number[] = [];
    const coldKeptAlive: number[] = [];
    const warmKeptAlive: number[] = [];
    const downs: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const c = await upUntilLocal(ns.name, ip);
      cold.push(c.fresh);
      coldKeptAlive.push(c.keptAlive);
      devbox(['down', 'api', '-n', ns.name, '--keep-agent']);
      const w = await upUntilLocal(ns.name, ip);
      warm.push(w.fresh);
      warmKeptAlive.push(w.keptAlive);
      downs.push(devbox(['down', 'api', '-n', ns.name]));
      await answeredFrom(ip, 'pod', performance.now());
    }
    const result = {
      upColdMs: Math.round(median(cold)),
      upWarmMs: Math.round(median(warm)),
      upColdKeptAliveMs: Math.round(median(coldKeptAlive)),
      upWarmKeptAliveMs: Math.round(median(warmKeptAlive)),
      downMs: Math.round(median(downs)),
    };
    const row = (name: string, xs: number[], target: string) =>
      `${name.padEnd(34)}${xs.map((x) => `${Math.round(x)}`.padStart(7)).join('')}${`${Math.round(median(xs))}`.padStart(9)}   ${target}`;
    process.stdout.write(
      [
        `devbox up/down on the local cluster (${ROUNDS} rounds, ms)`,
        `${'measure'.padEnd(34)}${Array.from({ length: ROUNDS }, (_, i) => `#${i + 1}`.padStart(7)).join('')}${'median'.padStart(9)}   target`,
        row('up --detach → answered locally, cold', cold, '≤ 10000'),
        row('up --detach → answered locally, warm', warm, '≤ 2000'),
        row('  same, kept-alive client, cold', coldKeptAlive, ''),
        row('  same, kept-alive client, warm', warmKeptAlive, ''),
        row('down', downs, '≤ 3000'),
        '',
      ].join('\n'),
    );
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    spawnSync(process.execPath, [cli, 'clean', '-n', ns.name], { env: devboxEnv() });
    await ns.remove();
  }
}

await main();
