/**
 * `npm run bench:loop`: the dev loop, timed from writing a changed source file
 * to the first in-cluster request answered by the new code (requests go to the
 * Service's ClusterIP from the node, through kube-proxy, one fresh connection
 * every 10 ms), median of 5 edits, for `--on-change restart` (`syncRestartMs`),
 * an app that reloads itself with `--on-change none` (`syncReloadMs`), and
 * `--on-change rebuild` with a small Dockerfile (`rebuildMs`); then the same
 * against a second Docker engine reached over tcp (`remote…Ms`; `--local-only` skips it).
 * devbox runs as a user holding only the developer Role. Targets
 * are printed beside the figures; a missed target does not fail the run.
 * `--json` prints one JSON object on the last line.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createDockerClient } from '../../src/docker/client.js';
import { ensureRuntimeImage } from '../../src/docker/runtime-image.js';
import { type SecondEngine, startSecondEngine } from '../integration/remote-docker/dockerd.js';
import { clusterImages, kubectl, testNamespace } from '../support/cluster.js';
import { devboxEnv } from '../support/devbox.js';
import { developerIn } from '../support/developer.js';

const EDITS = 5;
const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const json = process.argv.includes('--json');
const withRemote = !process.argv.includes('--local-only');

/** The app: answers with the version it runs; with RELOAD=1 it reads the version again on each request. */
const SERVER = `
const http = require('node:http');
const load = () => { try { delete require.cache['/app/version.js']; return require('/app/version.js'); } catch { return 'none'; } };
const started = load();
http.createServer((req, res) => {
  const version = process.env.RELOAD ? load() : started;
  res.end(JSON.stringify({ where: process.env.DEVBOX_SESSION ? 'local:' + version : 'pod' }));
}).listen(8080);
process.on('SIGTERM', () => process.exit(0));
`;

const workload = (image: string) => `
apiVersion: v1
kind: ConfigMap
metadata: { name: loop-code }
data:
  server.js: ${JSON.stringify(SERVER)}
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: loopapi }
spec:
  replicas: 1
  selector: { matchLabels: { app: loopapi } }
  template:
    metadata: { labels: { app: loopapi } }
    spec:
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: ${image}
          imagePullPolicy: IfNotPresent
          command: [node, /app/server.js]
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 }
          volumeMounts: [{ name: code, mountPath: /app }]
      volumes: [{ name: code, configMap: { name: loop-code } }]
---
apiVersion: v1
kind: Service
metadata: { name: loopapi }
spec:
  selector: { app: loopapi }
  ports: [{ name: http, port: 80, targetPort: http }]
`;

function whoAnswers(ip: string): Promise<string> {
  return new Promise((resolve) => {
    const req = get({ host: ip, port: 80, path: '/', timeout: 500, agent: false }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(/"where":"([^"]+)"/.exec(body)?.[1] ?? 'unknown'));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve('error'));
  });
}

async function answeredBy(ip: string, where: string, since: number, timeoutMs = 180_000): Promise<number> {
  const deadline = since + timeoutMs;
  while (performance.now() < deadline) {
    if ((await whoAnswers(ip)) === where) return performance.now() - since;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`the Service never answered from ${where}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

type Mode = 'restart' | 'reload' | 'rebuild';

/** One foreground session with --sync, edited EDITS times; returns the time of each edit. */
async function measure(ns: string, ip: string, mode: Mode, env: NodeJS.ProcessEnv): Promise<number[]> {
  const project = await mkdtemp(join(tmpdir(), `devbox-bench-loop-${mode}-`));
  const version = (v: string) =>
    writeFile(join(project, 'version.js'), `module.exports = ${JSON.stringify(v)};\n`);
  await version('edit-0');
  await writeFile(
    join(project, 'Dockerfile'),
    `FROM ${clusterImages().runtime}\nCOPY version.js /app/version.js\n`,
  );
  const args = ['up', 'loopapi', '-n', ns, '--sync', 'version.js:/app/version.js'];
  if (mode === 'restart') args.push('--on-change', 'restart');
  if (mode === 'reload') args.push('--on-change', 'none', '-e', 'RELOAD=1');
  if (mode === 'rebuild') args.push('--on-change', 'rebuild', '--build', '.');
  const child: ChildProcess = spawn(process.execPath, [cli, ...args], { env, cwd: project });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout?.resume();
  const exited = new Promise<void>((resolve) => child.on('close', () => resolve()));
  try {
    await Promise.race([
      answeredBy(ip, 'local:edit-0', performance.now()),
      exited.then(() => {
        throw new Error(`devbox up ended:\n${stderr}`);
      }),
    ]);
    const times: number[] = [];
    for (let i = 1; i <= EDITS; i++) {
      // Let the previous cycle settle, as between two saves.
      await new Promise((r) => setTimeout(r, 500));
      const since = performance.now();
      await version(`edit-${i}`);
      times.push(await answeredBy(ip, `local:edit-${i}`, since));
    }
    return times;
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${stderr}`);
  } finally {
    child.kill('SIGINT');
    await exited;
    await rm(project, { recursive: true, force: true });
  }
}

async function main() {
  const ns = await testNamespace('bench-loop');
  let engine: SecondEngine | undefined;
  const results: Record<string, number[]> = {};
  try {
    await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: workload(clusterImages().runtime) });
    await kubectl(['-n', ns.name, 'rollout', 'status', 'deploy/loopapi', '--timeout=180s']);
    const ip = (
      await kubectl(['-n', ns.name, 'get', 'svc', 'loopapi', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    await answeredBy(ip, 'pod', performance.now());
    const local = devboxEnv({ kubeconfig: (await developerIn(ns.name)).kubeconfig });
    for (const mode of ['restart', 'reload', 'rebuild'] as const)
      results[mode] = await measure(ns.name, ip, mode, local);
    if (withRemote) {
      try {
        engine = await startSecondEngine();
        await engine.load(clusterImages().runtime, (await ensureRuntimeImage(createDockerClient())).tag);
        const remote = { ...local, ...engine.env };
        for (const mode of ['restart', 'reload', 'rebuild'] as const)
          results[`remote-${mode}`] = await measure(ns.name, ip, mode, remote);
      } catch (err) {
        process.stderr.write(`remote engine figures not measured: ${(err as Error).message}\n`);
      }
    }
  } finally {
    spawnSync(process.execPath, [cli, 'clean', '-n', ns.name, '--force'], { env: devboxEnv() });
    await engine?.stop();
    await ns.remove();
  }
  const rows: [string, string, string, string][] = [
    ['syncRestartMs', 'restart', 'sync + --on-change restart', '≤ 1500'],
    ['syncReloadMs', 'reload', 'sync, app reloads itself (none)', '≤ 1000'],
    ['rebuildMs', 'rebuild', '--on-change rebuild', '≤ 10000'],
    ['remoteSyncRestartMs', 'remote-restart', 'remote engine: restart', 'within 20% of local'],
    ['remoteSyncReloadMs', 'remote-reload', 'remote engine: reload', 'within 20% of local'],
    ['remoteRebuildMs', 'remote-rebuild', 'remote engine: rebuild', 'within 20% of local'],
  ];
  const summary: Record<string, number> = {};
  const lines = [
    `the dev loop: edit → first in-cluster answer by the new code (${EDITS} edits, ms)`,
    `${'measure'.padEnd(34)}${Array.from({ length: EDITS }, (_, i) => `#${i + 1}`.padStart(7)).join('')}${'median'.padStart(9)}   target`,
  ];
  for (const [key, mode, title, target] of rows) {
    const xs = results[mode];
    if (!xs) continue;
    summary[key] = Math.round(median(xs));
    lines.push(
      `${title.padEnd(34)}${xs.map((x) => `${Math.round(x)}`.padStart(7)).join('')}${`${summary[key]}`.padStart(9)}   ${target}`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
}

await main();
