/**
 * `npm run bench:up`: how long `devbox up --detach` takes until an in-cluster
 * request to the workload's Service is answered by the local container, with
 * the agent not yet in the pods (cold) and already there (warm, after
 * `devbox down --keep-agent`), and how long `devbox down` takes. Runs on the
 * local cluster; requests go to the Service's ClusterIP from the node, through
 * kube-proxy, as any in-cluster client's would: one fresh connection per request,
 * and beside it a pooled client asking every 100 ms on one kept-alive connection,
 * which has to be handed over to the session. A second workload, `seeded`, has an init
 * container that fills an `emptyDir`, as real apps do: its contents travel through the CLI's own
 * tunnel to the agent, and `up --detach` of it is timed until the command returns, beside the same
 * for `api` (no such volume). `--json` prints one JSON object on the last line.
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

/** A workload whose init container seeds an emptyDir (1,000 small files and one of 4 MiB). */
const seededWorkload = (image: string) => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: seeded }
spec:
  replicas: 1
  selector: { matchLabels: { app: seeded } }
  template:
    metadata: { labels: { app: seeded } }
    spec:
      terminationGracePeriodSeconds: 1
      initContainers:
        - name: seed
          image: ${image}
          imagePullPolicy: IfNotPresent
          command: [node, -e, "const fs=require('fs');for(let i=0;i<1000;i++)fs.writeFileSync('/data/f'+i,'x'.repeat(100));fs.writeFileSync('/data/big',Buffer.alloc(4<<20))"]
          volumeMounts: [{ name: data, mountPath: /data }]
      containers:
        - name: app
          image: ${image}
          imagePullPolicy: IfNotPresent
          command: [node, -e, "require('http').createServer((q,s)=>s.end('seeded')).listen(8080)"]
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 }
          volumeMounts: [{ name: data, mountPath: /data }]
      volumes: [{ name: data, emptyDir: {} }]
---
apiVersion: v1
kind: Service
metadata: { name: seeded }
spec:
  selector: { app: seeded }
  ports: [{ name: http, port: 80, targetPort: http }]
`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main() {
  const ns = await testNamespace('bench-up');
  try {
    const client = createKubeClient({ kubeconfig, namespace: ns.name });
    await deployShop(client, ns.name, clusterImages().runtime);
    client.close();
    await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: seededWorkload(clusterImages().runtime) });
    await kubectl(['-n', ns.name, 'rollout', 'status', 'deploy/seeded', '--timeout=120s']);
    const ip = (
      await kubectl(['-n', ns.name, 'get', 'svc', 'api', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    const cold: number[] = [];
    const warm: number[] = [];
    const coldKeptAlive: number[] = [];
    const warmKeptAlive: number[] = [];
    const downs: number[] = [];
    const detachPlain: number[] = [];
    const detachSeeded: number[] = [];
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
      detachPlain.push(devbox(['up', 'api', '-n', ns.name, '--detach']));
      devbox(['down', 'api', '-n', ns.name]);
      detachSeeded.push(devbox(['up', 'seeded', '-n', ns.name, '--detach']));
      devbox(['down', 'seeded', '-n', ns.name]);
    }
    const result = {
      upColdMs: Math.round(median(cold)),
      upWarmMs: Math.round(median(warm)),
      upColdKeptAliveMs: Math.round(median(coldKeptAlive)),
      upWarmKeptAliveMs: Math.round(median(warmKeptAlive)),
      downMs: Math.round(median(downs)),
      upDetachMs: Math.round(median(detachPlain)),
      upDetachEmptyDirMs: Math.round(median(detachSeeded)),
    };
    const row = (name: string, xs: number[], target: string) =>
      `${name.padEnd(34)}${xs.map((x) => `${Math.round(x)}`.padStart(7)).join('')}${`${Math.round(median(xs))}`.padStart(9)}   ${target}`;
    process.stdout.write(
      [
        `devbox up/down on the local cluster (${ROUNDS} rounds, ms)`,
        `${'measure'.padEnd(34)}${Array.from({ length: ROUNDS }, (_, i) => `#${i + 1}`.padStart(7)).join('')}${'median'.padStart(9)}   target`,
        row('up --detach → answered locally, cold', cold, '≤ 3000'),
        row('up --detach → answered locally, warm', warm, '≤ 1000'),
        row('  same, kept-alive client, cold', coldKeptAlive, '≤ 1500'),
        row('  same, kept-alive client, warm', warmKeptAlive, '≤ 1500'),
        row('down', downs, '≤ 3000'),
        row('up --detach returns, api', detachPlain, ''),
        row('up --detach returns, emptyDir seeded', detachSeeded, 'within 1000 of api'),
        '',
      ].join('\n'),
    );
    if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    spawnSync(process.execPath, [cli, 'clean', '-n', ns.name, '--force'], { env: devboxEnv() });
    await ns.remove();
  }
}

await main();
