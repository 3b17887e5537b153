/**
 * The fault tests disturb the shared cluster and Docker engine. Each one checks first that the
 * cluster is whole (and fails, naming what is broken, when it is not), and leaves it whole: a
 * daemon it stopped is started again with its own command line, and the check runs again.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { clusterDir, docker, kubectl } from '../support/cluster.js';

/** Daemons `cluster:up` starts as host processes (test/cluster/lib.sh start_daemon). */
export type ClusterDaemon = 'kube-apiserver' | 'dockerd';

const runDir = join(clusterDir, 'run');
const logDir = join(clusterDir, 'logs');

interface WithConditions {
  metadata: { name: string };
  status: { conditions?: { type: string; status: string; message?: string }[] };
}
const readyCondition = (o: WithConditions) => o.status.conditions?.find((c) => c.type === 'Ready');

/** What is wrong with the cluster and the engine, in words; empty when all is well. */
export async function clusterProblems(): Promise<string[]> {
  const problems: string[] = [];
  const ask = async (what: string, run: () => Promise<void>) => {
    try {
      await run();
    } catch (err) {
      problems.push(`${what}: ${(err as Error).message.split('\n')[0]}`);
    }
  };
  await ask('API server /readyz', async () => {
    const text = await kubectl(['get', '--raw', '/readyz'], { timeoutMs: 10_000 });
    if (text.trim() !== 'ok') throw new Error(text.trim());
  });
  if (problems.length) return problems;
  await ask('nodes', async () => {
    const nodes = JSON.parse(await kubectl(['get', 'nodes', '-o', 'json'])) as { items: WithConditions[] };
    if (nodes.items.length === 0) throw new Error('no node');
    for (const node of nodes.items) {
      const ready = readyCondition(node);
      if (ready?.status !== 'True') throw new Error(`${node.metadata.name} is not Ready (${ready?.message})`);
    }
  });
  await ask('kube-system pods', async () => {
    const pods = JSON.parse(await kubectl(['-n', 'kube-system', 'get', 'pods', '-o', 'json'])) as {
      items: WithConditions[];
    };
    const notReady = pods.items
      .filter((p) => readyCondition(p)?.status !== 'True')
      .map((p) => p.metadata.name);
    if (notReady.length) throw new Error(`not Ready: ${notReady.join(', ')}`);
  });
  await ask('Docker engine', async () => {
    const info = await docker(['info', '--format', '{{.ServerVersion}}'], 15_000);
    if (info.code !== 0) throw new Error(info.stderr.trim() || `docker info exited ${info.code}`);
  });
  await ask('isolation of Docker from the cluster', async () => {
    // Docker re-creates its own chains when it starts; the cluster's rules must still come first.
    const user = await iptables(['-S', 'DOCKER-USER']);
    if (!user.includes('-j DEVBOX-ISOLATION'))
      throw new Error('DOCKER-USER no longer jumps to DEVBOX-ISOLATION');
  });
  return problems;
}

/** Fails with every problem named when the cluster is not whole (`when`: before or after what). */
export async function assertClusterWhole(when: string): Promise<void> {
  const problems = await clusterProblems();
  if (problems.length) {
    throw new Error(
      `The local cluster is not whole ${when}:\n  ${problems.join('\n  ')}\n` +
        'Restore it with `npm run cluster:up` (it resumes a running cluster) before running the fault tests.',
    );
  }
}

/** The node controller's heartbeat: when each node's kubelet last renewed its Lease (epoch ms). */
async function nodeLeaseRenewals(): Promise<Map<string, number>> {
  const leases = JSON.parse(await kubectl(['-n', 'kube-node-lease', 'get', 'leases', '-o', 'json'])) as {
    items: { metadata: { name: string }; spec: { renewTime?: string } }[];
  };
  return new Map(leases.items.map((l) => [l.metadata.name, Date.parse(l.spec.renewTime ?? '') || 0]));
}

/**
 * After a disturbance at `since` (epoch ms): waits until every node's kubelet has renewed its
 * Lease after it and the cluster stays whole for a node-monitor period, up to `timeoutMs`; then
 * fails naming what is still broken. Without the fresh Lease the node controller may mark the
 * node NotReady a while later — and with it every pod — in the middle of the next test.
 */
export async function waitClusterWhole(when: string, since: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const stableMs = 6_000;
  let wholeSince = 0;
  let problems: string[] = [];
  while (Date.now() < deadline) {
    problems = await clusterProblems();
    if (!problems.length) {
      const stale = [...(await nodeLeaseRenewals().catch(() => new Map<string, number>()))]
        .filter(([, renewed]) => renewed < since)
        .map(([node]) => node);
      if (stale.length) problems.push(`node Lease not renewed since the disturbance: ${stale.join(', ')}`);
    }
    if (problems.length) wholeSince = 0;
    else if (!wholeSince) wholeSince = Date.now();
    else if (Date.now() - wholeSince >= stableMs) {
      if (await controllersServe(deadline)) return;
      problems = ['a new namespace got no default ServiceAccount: the controller manager has not caught up'];
      break;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `The local cluster is not whole ${when} (waited ${timeoutMs} ms):\n  ${problems.join('\n  ') || 'it did not stay whole'}\n` +
      'Restore it with `npm run cluster:up` (it resumes a running cluster).',
  );
}

/** The controller manager acts again: a new namespace gets its `default` ServiceAccount before `deadline`. */
async function controllersServe(deadline: number): Promise<boolean> {
  const name = `fault-check-${Math.random().toString(36).slice(2, 8)}`;
  await kubectl(['create', 'namespace', name]);
  try {
    while (Date.now() < deadline) {
      if (
        await kubectl(['-n', name, 'get', 'serviceaccount', 'default']).then(
          () => true,
          () => false,
        )
      )
        return true;
      await new Promise((r) => setTimeout(r, 250));
    }
    return false;
  } finally {
    await kubectl(['delete', 'namespace', name, '--wait=false']).catch(() => undefined);
  }
}

async function iptables(args: string[]): Promise<string> {
  const child = spawn('iptables', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`iptables ${args.join(' ')}: ${err.trim()}`);
  return out;
}

/** A stopped daemon: what it takes to start it again exactly as `cluster:up` did. */
export interface StoppedDaemon {
  name: ClusterDaemon;
  argv: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** How long the daemon took to exit after SIGTERM. */
  stopMs: number;
}

function daemonPid(name: ClusterDaemon): number {
  const [pid, program] = readFileSync(join(runDir, `${name}.pid`), 'utf8')
    .trim()
    .split(' ');
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  if (!cmdline.includes(program!))
    throw new Error(`${name}'s pid ${pid} now runs something else: ${cmdline}`);
  return Number(pid);
}

function processEnv(pid: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const entry of readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const at = entry.indexOf('=');
    if (at > 0) env[entry.slice(0, at)] = entry.slice(at + 1);
  }
  return env;
}

/** Running, and not a zombie waiting for its parent. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Stops a cluster daemon with `signal` (SIGKILL after `timeoutMs`) and waits until it is gone.
 * The API server answers on for up to a minute after SIGTERM while it drains long-running
 * requests (port-forwards, watches): SIGKILL is what makes it go away at once, as a crash does.
 */
export async function stopDaemon(
  name: ClusterDaemon,
  { signal = 'SIGTERM', timeoutMs = 60_000 }: { signal?: NodeJS.Signals; timeoutMs?: number } = {},
): Promise<StoppedDaemon> {
  const pid = daemonPid(name);
  const stopped: StoppedDaemon = {
    name,
    argv: readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean),
    cwd: readlinkSync(`/proc/${pid}/cwd`),
    env: processEnv(pid),
    stopMs: 0,
  };
  const started = Date.now();
  process.kill(pid, signal);
  const deadline = started + timeoutMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) {
    process.kill(pid, 'SIGKILL');
    while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
  }
  stopped.stopMs = Date.now() - started;
  return stopped;
}

/** Starts a stopped daemon again, detached like `cluster:up` starts it, with the same pid file and log. */
export function startDaemon(stopped: StoppedDaemon): void {
  const log = openSync(join(logDir, `${stopped.name}.log`), 'a');
  try {
    const child = spawn(stopped.argv[0]!, stopped.argv.slice(1), {
      cwd: stopped.cwd,
      env: stopped.env,
      detached: true,
      stdio: ['ignore', log, log],
    });
    child.unref();
    writeFileSync(join(runDir, `${stopped.name}.pid`), `${child.pid} ${basename(stopped.argv[0]!)}\n`);
  } finally {
    closeSync(log);
  }
}

/**
 * Polls `check` every 100 ms until it resolves true; returns when the successful check began
 * (epoch ms: the earliest the condition is known to hold), or throws after `timeoutMs`.
 */
export async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const began = Date.now();
    if (await check().catch(() => false)) return began;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not within ${timeoutMs} ms`);
}

/** True once the API server answers /readyz with ok. */
export async function apiReady(): Promise<boolean> {
  return (await kubectl(['get', '--raw', '/readyz'], { timeoutMs: 3_000 })).trim() === 'ok';
}
