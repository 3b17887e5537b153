/**
 * `npm run bench:tunnel [-- --json] [--quick] [--only=throughput,…] [--paths=outbound,…]
 * [--profile=loopback|wan --rtt-ms=50 --rate-mbps=1000]`: the tunnel measured on the local cluster,
 * in one run, on four paths:
 *
 * - direct:      client pod → server pod (the cluster's own network, the floor)
 * - portForward: host → `kubectl port-forward` → server pod (what devbox is compared with)
 * - outbound:    local container → sidecar → tunnel → agent → server Service
 * - inbound:     client pod → Service → agent → tunnel → sidecar → local container
 *
 * Per path: one 256 MB download and one 256 MB upload, 10,000 keep-alive HTTP requests (p50/p99),
 * TCP connection set-up rate, 1,000 concurrent connections; on the devbox paths
 * also the sidecar's and agent's peak RSS and a paused-reader check; the CPU seconds per GB of the
 * forwarding processes (sidecar, agent, kubectl). Prints a table; with --json also one JSON object
 * on the last stdout line. Targets are reported, not asserted. Progress goes to stderr.
 *
 * Profiles: `loopback` (default) reaches the API server directly; `wan` puts one delay-and-rate
 * proxy (`wan.ts`) between the API server and every client whose traffic the figures measure:
 * `kubectl port-forward`, the devbox CLI and the sidecar it starts. The `direct` path never
 * touches the API server, and the benchmark's own controls (set-up, `kubectl exec` of the clients,
 * the samplers) go direct too. With `wan` the JSON figures sit under a `wan` key.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
import {
  type BenchReport,
  type CpuPerGB,
  PATHS,
  type PathName,
  type RssWindow,
  renderTable,
} from './report.js';
import { RssSeries, startSampler } from './sampler.js';
import { startWanProxy, TOXIPROXY_VERSION, type WanProxy, wanSettings } from './wan.js';

const run = promisify(execFile);
const argv = process.argv.slice(2);
const args = new Set(argv);
const json = args.has('--json');
/** Smaller sizes and counts, for trying the benchmark itself out. */
const quick = args.has('--quick');
/** The value of `--name=value` or `--name value`; `''` when the flag has no value. */
function flag(name: string): string | undefined {
  for (const [i, a] of argv.entries()) {
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
    if (a === `--${name}`) return argv[i + 1]?.startsWith('--') ? '' : (argv[i + 1] ?? '');
  }
  return undefined;
}
const list = (name: string) => new Set((flag(name) ?? '').split(',').filter(Boolean));
/** `--only=throughput,latency`: run just these measurements (for profiling one of them). */
const only = list('only');
const wanted = (kind: ClientTask['kind']) => only.size === 0 || only.has(kind);
/** `--paths=portForward,outbound`: measure just these paths. */
const onlyPaths = list('paths');

const PROFILES = ['loopback', 'wan'] as const;
type Profile = (typeof PROFILES)[number];
function profileFlag(): Profile {
  const value = flag('profile') ?? 'loopback';
  if (!PROFILES.includes(value as Profile)) {
    throw new Error(`--profile=${value}: give one of ${PROFILES.join(', ')}`);
  }
  return value as Profile;
}
/** Bad flags end the run before anything is created, naming the flag. */
function checked<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
}
const profile = checked(profileFlag);
const wan = profile === 'wan' ? checked(() => wanSettings(flag)) : undefined;

const MB = 1024 * 1024;
const GB = 1024 * MB;
const SIZES = {
  transferBytes: Number(flag('transfer-mb') ?? (quick ? 32 : 256)) * MB,
  // Over a WAN each request takes a round trip: fewer of them, in about the same time.
  latencyCount: quick ? 1_000 : wan ? 1_000 : 10_000,
  latencyWarmup: quick ? 100 : wan ? 50 : 500,
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

function say(text: string): void {
  process.stderr.write(`${text}\n`);
}

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
    let proxy: WanProxy | undefined;
    if (wan) {
      proxy = await startWanProxy(kubeconfig, () => readFileSync(kubeconfig, 'utf8'), wan, say);
      // Registered before `devbox down`, so undone after it: down goes through the proxy.
      cleanups.push(proxy.stop);
    }
    const clientConfig = proxy?.kubeconfig ?? kubeconfig;
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
    cleanups.push(() => devbox(['down', WORKLOAD, '-n', ns], undefined, clientConfig));
    const containers = await devboxUp(WORKLOAD, ns, clientConfig);
    const appPod = await podOf(ns, WORKLOAD);

    const http = await portForward(ns, `pod/${serverPod.name}`, POD_PORTS.http, clientConfig);
    children.push(http.process);
    const tcp = await portForward(ns, `pod/${serverPod.name}`, POD_PORTS.tcp, clientConfig);
    children.push(tcp.process);

    const samplerArg = (target: { match: string } | { pid: number }) =>
      JSON.stringify({ ...target, intervalMs: 250, durationMs: 30 * 60_000 });
    const sidecarRss = new RssSeries();
    const agentRss = new RssSeries();
    const kubectlRss = new RssSeries();
    children.push(
      startSampler(
        process.execPath,
        ['-e', script(rssSampler), samplerArg({ pid: http.process.pid! })],
        kubectlRss,
      ),
      startSampler(
        'docker',
        ['exec', containers.sidecar, 'node', '-e', script(rssSampler), samplerArg({ match: 'sidecar.mjs' })],
        sidecarRss,
      ),
      startSampler(
        kubectlPath,
        nodeInPodArgs(
          ns,
          appPod.name,
          AGENT_CONTAINER,
          script(rssSampler),
          samplerArg({ match: 'agent.mjs' }),
        ),
        agentRss,
      ),
    );
    await Promise.all([sidecarRss.first(15_000), agentRss.first(15_000), kubectlRss.first(15_000)]);
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
      cpuPerGB: {},
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
    const forwarders = { sidecar: sidecarRss, agent: agentRss, kubectl: kubectlRss };
    for (const phase of report.phases) {
      if (phase.task === 'throughput' || phase.task === 'upload') {
        const who = phase.path === 'portForward' ? (['kubectl'] as const) : (['sidecar', 'agent'] as const);
        const result = (phase.task === 'throughput' ? report.throughput : report.upload)[phase.path];
        if (phase.path !== 'direct' && result && !('error' in result)) {
          // The transfer itself, not the client's start in its container or pod (a second at most
          // passes between the transfer's end and the client's exit being seen here).
          const transfer = { from: Math.max(phase.from, phase.to - result.ms - 1_000), to: phase.to };
          const perGB: CpuPerGB = {};
          for (const name of who) {
            const seconds = forwarders[name].cpuSeconds(transfer);
            if (seconds !== undefined) perGB[name] = seconds / (SIZES.transferBytes / GB);
          }
          const direction = phase.task === 'throughput' ? 'download' : 'upload';
          report.cpuPerGB[phase.path] = { ...report.cpuPerGB[phase.path], [direction]: perGB };
        }
      }
      if (phase.path !== 'outbound' && phase.path !== 'inbound') continue;
      phase.sidecar = sidecarRss.rise(phase);
      phase.agent = agentRss.rise(phase);
    }
    const network = wan && {
      ...wan,
      proxy: `toxiproxy ${TOXIPROXY_VERSION}: latency and bandwidth toxics each way, one per connection`,
    };
    const { table, summary } = renderTable(
      report,
      network
        ? `WAN: ${network.rttMs} ms round trip, ${network.rateMbps} Mbit/s each way (${network.proxy})`
        : 'loopback',
    );
    process.stdout.write(`${table}\n`);
    if (json)
      process.stdout.write(`${JSON.stringify(network ? { wan: { network, ...summary } } : summary)}\n`);
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
