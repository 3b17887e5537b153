/**
 * `npm run bench:tunnel [-- --json] [--quick] [--only=throughput,…] [--paths=outbound,…]`: the tunnel measured on the
 * local cluster, in one run, on four paths:
 *
 * - direct:      client pod → server pod (the cluster's own network, the floor)
 * - portForward: host → `kubectl port-forward` → server pod (what devbox is compared with)
 * - outbound:    local container → sidecar → tunnel → agent → server Service
 * - inbound:     client pod → Service → agent → tunnel → sidecar → local container
 *
 * Per path: one 256 MB download and one 256 MB upload, 10,000 keep-alive HTTP requests (p50/p99),
 * TCP connection set-up rate, 1,000 concurrent connections; on the devbox paths
 * also the sidecar's and agent's peak RSS and a paused-reader check. Prints a
 * table; with --json also one JSON object on the last stdout line. Targets are
 * reported, not asserted. Progress goes to stderr.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { AGENT_CONTAINER } from '../../src/kube/intercept.js';
import { devbox, devboxUp } from '../integration/tunnel/fixture.js';
import {
  clusterDir,
  clusterImages,
  kubeconfig,
  kubectl,
  portForward,
  testNamespace,
} from '../support/cluster.js';
import { developerRoleTemplate } from '../support/developer.js';
import {
  benchClient,
  benchServer,
  type ClientSpec,
  type ClientTask,
  type ConcurrentResult,
  type ConnectResult,
  type LatencyResult,
  type PausedResult,
  rssSampler,
  type ServerPorts,
  script,
  type ThroughputResult,
} from './peers.js';
import { type BenchReport, PATHS, type PathName, type RssWindow, renderTable } from './report.js';
import { RssSeries, startSampler } from './sampler.js';

const run = promisify(execFile);
const args = new Set(process.argv.slice(2));
const json = args.has('--json');
/** Smaller sizes and counts, for trying the benchmark itself out. */
const quick = args.has('--quick');
/** `--only=throughput,latency`: run just these measurements (for profiling one of them). */
const only = new Set(
  process.argv
    .slice(2)
    .filter((a) => a.startsWith('--only='))
    .flatMap((a) => a.slice('--only='.length).split(',')),
);
function flag(name: string): string | undefined {
  return process.argv
    .slice(2)
    .find((a) => a.startsWith(`--${name}=`))
    ?.slice(name.length + 3);
}
const wanted = (kind: ClientTask['kind']) => only.size === 0 || only.has(kind);
/** `--paths=portForward,outbound`: measure just these paths. */
const onlyPaths = new Set(
  process.argv
    .slice(2)
    .filter((a) => a.startsWith('--paths='))
    .flatMap((a) => a.slice('--paths='.length).split(',')),
);

const MB = 1024 * 1024;
const SIZES = {
  transferBytes: Number(flag('transfer-mb') ?? (quick ? 32 : 256)) * MB,
  latencyCount: quick ? 1_000 : 10_000,
  latencyWarmup: quick ? 100 : 500,
  connectMax: quick ? 500 : 5_000,
  connectMs: quick ? 2_000 : 5_000,
  connectParallel: 8,
  concurrent: 1_000,
  concurrentTimeoutMs: 30_000,
  pausedStreams: 2,
  pausedStreamBytes: (quick ? 16 : 64) * MB,
  pausedSettleMs: 2_000,
  pausedHoldMs: 6_000,
  pausedRounds: quick ? 1 : 3,
} as const;

const POD_PORTS: ServerPorts = { http: 8080, tcp: 9000 };
/** Service ports differ from the container ports: the local server binds the container ports in the sidecar's netns. */
const SERVICE_PORTS: ServerPorts = { http: 80, tcp: 90 };
const WORKLOAD = 'bench-tunnel-app';

const say = (text: string) => process.stderr.write(`${text}\n`);

function manifests(ns: string, image: string): string {
  const server = JSON.stringify(['node', '-e', script(benchServer), JSON.stringify(POD_PORTS)]);
  const sleep = JSON.stringify(['node', '-e', 'setInterval(() => {}, 1 << 30)']);
  const workload = (name: string) => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata: { labels: { app: ${name} } }
    spec:
      containers:
        - name: server
          image: ${image}
          imagePullPolicy: Never
          command: ${server}
          ports: [{ name: http, containerPort: ${POD_PORTS.http} }, { name: tcp, containerPort: ${POD_PORTS.tcp} }]
          readinessProbe: { tcpSocket: { port: ${POD_PORTS.http} }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  selector: { app: ${name} }
  ports:
    - { name: http, port: ${SERVICE_PORTS.http}, targetPort: http }
    - { name: tcp, port: ${SERVICE_PORTS.tcp}, targetPort: tcp }
---`;
  return `${workload('bench-server')}${workload(WORKLOAD)}
apiVersion: v1
kind: Pod
metadata: { name: bench-client, namespace: ${ns} }
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: client
      image: ${image}
      imagePullPolicy: Never
      command: ${sleep}
`;
}

/** Where a path's client runs and what it talks to. */
interface PathClient {
  host: string;
  ports: ServerPorts;
  /** Runs `node -e source arg` where this path's client lives. */
  exec(source: string, arg: string, timeoutMs: number): Promise<string>;
}

async function execOut(file: string, argv: string[], timeoutMs: number): Promise<string> {
  try {
    const { stdout } = await run(file, argv, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${e.message.split('\n')[0]} ${e.stderr ?? ''}`.trim());
  }
}

const kubectlPath = `${clusterDir}/bin/kubectl`;
/** `kubectl exec` arguments running `node -e source arg` in a pod. */
const nodeInPodArgs = (
  ns: string,
  pod: string,
  container: string | undefined,
  source: string,
  arg: string,
) => [
  '--kubeconfig',
  kubeconfig,
  '-n',
  ns,
  'exec',
  pod,
  ...(container ? ['-c', container] : []),
  '--',
  'node',
  '-e',
  source,
  arg,
];
const inPod =
  (ns: string, pod: string, container?: string) => (source: string, arg: string, timeoutMs: number) =>
    execOut(kubectlPath, nodeInPodArgs(ns, pod, container, source, arg), timeoutMs);
const onHost = (source: string, arg: string, timeoutMs: number) =>
  execOut(process.execPath, ['-e', source, arg], timeoutMs);
const inContainer = (name: string) => (source: string, arg: string, timeoutMs: number) =>
  execOut('docker', ['exec', name, 'node', '-e', source, arg], timeoutMs);

async function runTask<T>(client: PathClient, task: ClientTask, deadlineMs: number): Promise<T> {
  const spec: ClientSpec = {
    host: client.host,
    httpPort: client.ports.http,
    tcpPort: client.ports.tcp,
    task,
    deadlineMs,
  };
  const out = await client.exec(script(benchClient), JSON.stringify(spec), deadlineMs + 20_000);
  const last = out.trim().split('\n').at(-1) ?? '';
  return JSON.parse(last) as T;
}

/** A measurement that failed is reported as such; the run goes on. */
async function attempt<T>(what: string, body: () => Promise<T>): Promise<T | { error: string }> {
  try {
    return await body();
  } catch (err) {
    const error = (err as Error).message.slice(0, 300);
    say(`  ✗ ${what}: ${error}`);
    return { error };
  }
}

async function measurePath(name: PathName, client: PathClient, report: BenchReport): Promise<void> {
  const windowStart = Date.now();
  say(`${name}:`);
  const step = async <T>(
    label: string,
    task: ClientTask,
    deadlineMs: number,
  ): Promise<T | { error: string } | undefined> => {
    if (!wanted(task.kind)) return undefined;
    const t0 = Date.now();
    const result = await attempt(`${name} ${label}`, () => runTask<T>(client, task, deadlineMs));
    if (!('error' in (result as object))) say(`  ✓ ${label} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    report.phases.push({ path: name, task: task.kind, from: t0, to: Date.now() });
    return result;
  };
  report.throughput[name] = await step<ThroughputResult>(
    `${SIZES.transferBytes / MB} MB transfer`,
    { kind: 'throughput', bytes: SIZES.transferBytes },
    180_000,
  );
  report.upload[name] = await step<ThroughputResult>(
    `${SIZES.transferBytes / MB} MB upload`,
    { kind: 'upload', bytes: SIZES.transferBytes },
    180_000,
  );
  report.latency[name] = await step<LatencyResult>(
    `${SIZES.latencyCount} keep-alive requests`,
    { kind: 'latency', count: SIZES.latencyCount, warmup: SIZES.latencyWarmup },
    120_000,
  );
  report.connect[name] = await step<ConnectResult>(
    'connection set-up rate',
    { kind: 'connect', maxCount: SIZES.connectMax, maxMs: SIZES.connectMs, parallel: SIZES.connectParallel },
    SIZES.connectMs + 30_000,
  );
  report.concurrent[name] = await step<ConcurrentResult>(
    `${SIZES.concurrent} concurrent connections`,
    { kind: 'concurrent', connections: SIZES.concurrent, timeoutMs: SIZES.concurrentTimeoutMs },
    3 * SIZES.concurrentTimeoutMs,
  );
  if (name === 'outbound' || name === 'inbound') {
    report.paused[name] = await step<PausedResult>(
      'paused reader',
      {
        kind: 'paused',
        streams: SIZES.pausedStreams,
        streamBytes: SIZES.pausedStreamBytes,
        settleMs: SIZES.pausedSettleMs,
        holdMs: SIZES.pausedHoldMs,
        rounds: SIZES.pausedRounds,
      },
      180_000,
    );
  }
  report.windows[name] = { from: windowStart, to: Date.now() };
}

async function podOf(ns: string, app: string): Promise<{ name: string; ip: string }> {
  const out = await kubectl([
    '-n',
    ns,
    'get',
    'pods',
    '-l',
    `app=${app}`,
    '--field-selector=status.phase=Running',
    '-o',
    'jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.metadata.deletionTimestamp}{"\\n"}{end}',
  ]);
  const live = out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(' '))
    .filter((f) => f.length === 2 && f[0]);
  if (live.length !== 1) throw new Error(`expected one running pod of ${app}, found: ${out.trim()}`);
  return { name: live[0]![0]!, ip: live[0]![1]! };
}

async function main(): Promise<void> {
  const image = clusterImages().runtime;
  const namespace = await testNamespace('bench-tunnel');
  const ns = namespace.name;
  const cleanups: (() => Promise<unknown>)[] = [async () => namespace.remove()];
  const children: ChildProcess[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const child of children) child.kill();
      for (const step of cleanups.reverse())
        await step().catch((err) => say(`clean-up: ${(err as Error).message}`));
    })());
  const onSignal = () => {
    say('interrupted: cleaning up');
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    say(`Namespace ${ns}: deploying the server, the workload and the client pod`);
    await kubectl(['apply', '-f', '-'], { input: manifests(ns, image) });
    await kubectl(['-n', ns, 'apply', '-f', developerRoleTemplate]);
    await Promise.all([
      kubectl(['-n', ns, 'rollout', 'status', 'deploy/bench-server', '--timeout=180s'], {
        timeoutMs: 200_000,
      }),
      kubectl(['-n', ns, 'rollout', 'status', `deploy/${WORKLOAD}`, '--timeout=180s'], {
        timeoutMs: 200_000,
      }),
      kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/bench-client', '--timeout=180s'], {
        timeoutMs: 200_000,
      }),
    ]);
    const serverPod = await podOf(ns, 'bench-server');
    const clusterIP = async (svc: string) =>
      (await kubectl(['-n', ns, 'get', 'svc', svc, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    const serverIP = await clusterIP('bench-server');
    const appIP = await clusterIP(WORKLOAD);

    say(`devbox up ${WORKLOAD}`);
    cleanups.push(() => devbox(['down', WORKLOAD, '-n', ns]));
    const containers = await devboxUp(WORKLOAD, ns);
    const appPod = await podOf(ns, WORKLOAD);

    const http = await portForward(ns, `pod/${serverPod.name}`, POD_PORTS.http);
    children.push(http.process);
    const tcp = await portForward(ns, `pod/${serverPod.name}`, POD_PORTS.tcp);
    children.push(tcp.process);

    const samplerArg = (match: string) => JSON.stringify({ match, intervalMs: 250, durationMs: 30 * 60_000 });
    const sidecarRss = new RssSeries();
    const agentRss = new RssSeries();
    children.push(
      startSampler(
        'docker',
        ['exec', containers.sidecar, 'node', '-e', script(rssSampler), samplerArg('sidecar.mjs')],
        sidecarRss,
      ),
      startSampler(
        kubectlPath,
        nodeInPodArgs(ns, appPod.name, AGENT_CONTAINER, script(rssSampler), samplerArg('agent.mjs')),
        agentRss,
      ),
    );
    await Promise.all([sidecarRss.first(15_000), agentRss.first(15_000)]);
    // Settle, then read the idle figures.
    await new Promise((resolve) => setTimeout(resolve, 2_000));

    const report: BenchReport = {
      sizes: SIZES,
      throughput: {},
      upload: {},
      latency: {},
      connect: {},
      concurrent: {},
      paused: {},
      windows: {},
      phases: [],
      rss: {},
    };
    const idle: RssWindow = { from: Date.now() - 1_500, to: Date.now() };
    const clients: Record<PathName, PathClient> = {
      direct: { host: serverPod.ip, ports: POD_PORTS, exec: inPod(ns, 'bench-client') },
      portForward: {
        host: '127.0.0.1',
        ports: { http: http.localPort, tcp: tcp.localPort },
        exec: onHost,
      },
      outbound: { host: serverIP, ports: SERVICE_PORTS, exec: inContainer(containers.service) },
      inbound: { host: appIP, ports: SERVICE_PORTS, exec: inPod(ns, 'bench-client') },
    };
    for (const name of PATHS) {
      if (onlyPaths.size === 0 || onlyPaths.has(name)) await measurePath(name, clients[name], report);
    }

    report.rss.idle = { sidecar: sidecarRss.max(idle), agent: agentRss.max(idle) };
    for (const name of ['outbound', 'inbound'] as const) {
      const window = report.windows[name];
      if (window) report.rss[name] = { sidecar: sidecarRss.max(window), agent: agentRss.max(window) };
      const paused = report.paused[name];
      if (paused && !('error' in paused)) {
        const held = { from: paused.pausedAt, to: paused.heldUntil };
        report.pausedRss ??= {};
        report.pausedRss[name] = {
          sidecar: sidecarRss.growth(paused.measuredAt, paused.heldUntil),
          agent: agentRss.growth(paused.measuredAt, paused.heldUntil),
          sidecarPeak: sidecarRss.max(held),
          agentPeak: agentRss.max(held),
        };
      }
    }
    for (const phase of report.phases) {
      if (phase.path !== 'outbound' && phase.path !== 'inbound') continue;
      phase.sidecar = sidecarRss.rise(phase);
      phase.agent = agentRss.rise(phase);
    }
    const { table, summary } = renderTable(report);
    process.stdout.write(`${table}\n`);
    if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    say(`bench failed: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
