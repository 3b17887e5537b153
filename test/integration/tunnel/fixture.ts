/**
 * The tunnel tests' world: a namespace holding a workload for `devbox up`
 * (an HTTP app that says where it runs), an echo Service (TCP, UDP and a
 * deterministic byte stream), a headless StatefulSet, an ExternalName Service
 * and a client pod; the devbox CLI run against it; and commands run in the
 * local service container or in the client pod. Everything runs Node from the
 * cluster's runtime image, so one script can ask the same question from both
 * sides.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { SidecarStatus } from '../../../src/sidecar/sidecar.js';
import {
  clusterDir,
  clusterImages,
  docker,
  kubeconfig,
  kubectl,
  testNamespace,
} from '../../support/cluster.js';
import { developerIn } from '../../support/developer.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../../../src/cli/main.js', import.meta.url));

export const HTTP_PORT = 8080;
export const ECHO_PORT = 7007;
export const BYTES_PORT = 8081;

/**
 * The in-cluster app of the `devbox up` workload and of the echo Service. Plain
 * CommonJS for `node -e`: `where` tells a local container (DEVBOX_SESSION is set
 * by devbox) from the pod; `/bytes?n=N` streams N bytes of AES-CTR keystream
 * (see {@link expectedBytesDigest}); the echo role also echoes TCP and UDP on {@link ECHO_PORT}.
 */
export const APP_SERVER = `
const http = require('node:http'), net = require('node:net'), dgram = require('node:dgram'), crypto = require('node:crypto');
const where = process.env.DEVBOX_SESSION ? 'local' : 'pod';
const role = process.argv[1] || 'app';
const stream = (res, n) => {
  const cipher = crypto.createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(64 * 1024);
  let left = n;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(n), 'x-where': where });
  const pump = () => {
    while (left > 0) {
      const chunk = cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left));
      left -= chunk.length;
      if (!res.write(chunk)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
};
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/bytes') return stream(res, Number(url.searchParams.get('n') || 0));
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ role, where, host: process.env.HOSTNAME }));
}).listen(${HTTP_PORT});
if (role === 'echo') {
  net.createServer((s) => s.on('error', () => s.destroy()).pipe(s)).listen(${ECHO_PORT});
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, from) => udp.send(Buffer.concat([Buffer.from(role + ':'), msg]), from.port, from.address));
  udp.bind(${ECHO_PORT});
}
`;

const SLEEP = 'setInterval(() => {}, 1 << 30)';
const DB_SERVER =
  "require('node:net').createServer((s) => s.on('error', () => s.destroy()).end('db ready\\n')).listen(5432)";

/** Manifests of the test world; `app` is the workload name given to `devbox up`. */
export function worldManifests(ns: string, app: string): string {
  const image = clusterImages().runtime;
  const server = (role: string) => JSON.stringify(['node', '-e', APP_SERVER, role]);
  return `
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${app}, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${app} } }
  template:
    metadata: { labels: { app: ${app} } }
    spec:
      containers:
        - name: app
          image: ${image}
          imagePullPolicy: Never
          command: ${server('app')}
          ports: [{ name: http, containerPort: ${HTTP_PORT} }]
          readinessProbe: { tcpSocket: { port: ${HTTP_PORT} }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: ${app}, namespace: ${ns} }
spec:
  selector: { app: ${app} }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: echo, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: echo } }
  template:
    metadata: { labels: { app: echo } }
    spec:
      containers:
        - name: echo
          image: ${image}
          imagePullPolicy: Never
          command: ${server('echo')}
          readinessProbe: { tcpSocket: { port: ${HTTP_PORT} }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: ${ns} }
spec:
  selector: { app: echo }
  ports:
    - { name: tcp-echo, port: ${ECHO_PORT}, targetPort: ${ECHO_PORT}, protocol: TCP }
    - { name: udp-echo, port: ${ECHO_PORT}, targetPort: ${ECHO_PORT}, protocol: UDP }
    - { name: http, port: 80, targetPort: ${HTTP_PORT}, protocol: TCP }
    - { name: bytes, port: ${BYTES_PORT}, targetPort: ${HTTP_PORT}, protocol: TCP }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: ${ns} }
spec:
  clusterIP: None
  selector: { app: db }
  ports: [{ name: postgres, port: 5432 }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: ${ns} }
spec:
  serviceName: db
  replicas: 1
  selector: { matchLabels: { app: db } }
  template:
    metadata: { labels: { app: db } }
    spec:
      containers:
        - name: db
          image: ${image}
          imagePullPolicy: Never
          command: ${JSON.stringify(['node', '-e', DB_SERVER])}
          readinessProbe: { tcpSocket: { port: 5432 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: legacy, namespace: ${ns} }
spec:
  type: ExternalName
  externalName: legacy.devbox.test
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: ${ns} }
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: client
      image: ${image}
      imagePullPolicy: Never
      command: ${JSON.stringify(['node', '-e', SLEEP])}
`;
}

export interface World {
  ns: string;
  app: string;
  /** The local service container (`devbox up` names it). */
  service: string;
  sidecar: string;
  /** Runs `node -e script args…` in the local service container; rejects on a non-zero exit. */
  local(script: string, args?: string[], timeoutMs?: number): Promise<string>;
  /** Runs `node -e script args…` in the client pod. */
  inPod(script: string, args?: string[], timeoutMs?: number): Promise<string>;
  /** Starts `node -e script args…` in the client pod and hands over its stdout lines as they come. */
  streamInPod(script: string, args: string[]): LineStream;
  /** The sidecar's status document (`sidecar.mjs status`). */
  sidecarStatus(): Promise<SidecarStatus>;
  /** `devbox down` (once). */
  down(): Promise<void>;
  /** `devbox down` unless done, then the namespace goes. Safe to call twice. */
  teardown(): Promise<void>;
}

/** Runs the devbox CLI against the local cluster, with the admin's kubeconfig unless given another. */
export async function devbox(args: string[], timeoutMs = 240_000, config = kubeconfig): Promise<string> {
  const agentImage = clusterImages().runtime;
  try {
    const { stdout } = await run(process.execPath, [cli, ...args], {
      env: { ...process.env, KUBECONFIG: config, DEVBOX_AGENT_IMAGE: agentImage },
      timeout: timeoutMs,
      maxBuffer: 16 << 20,
    });
    return stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    throw new Error(`devbox ${args.join(' ')} failed: ${e.message}\n${e.stderr ?? ''}${e.stdout ?? ''}`);
  }
}

/** Names of a session's local containers. */
export interface LocalContainers {
  service: string;
  sidecar: string;
}

/** `devbox up <workload> -n <ns> --detach`; the containers' names as it reports them. */
export async function devboxUp(workload: string, ns: string, config = kubeconfig): Promise<LocalContainers> {
  const out = await devbox(['up', workload, '-n', ns, '--detach', '-o', 'json'], undefined, config);
  const result = JSON.parse(out) as { containers: LocalContainers };
  return { service: result.containers.service, sidecar: result.containers.sidecar };
}

/**
 * Creates the namespace and the world, waits for it, and runs `devbox up <app> --detach`
 * with the app server as the local command, as a user holding only the developer Role.
 * A failure on the way tears down what exists.
 */
export async function startWorld(prefix: string, app: string): Promise<World> {
  const namespace = await testNamespace(prefix);
  const ns = namespace.name;
  let upDone = false;
  let containers: LocalContainers = { service: '', sidecar: '' };
  let config: string | undefined;
  const down = async () => {
    if (!upDone) return;
    upDone = false;
    await devbox(['down', app, '-n', ns], undefined, config);
  };
  const teardown = async () => {
    const problems: string[] = [];
    await down().catch((err) => problems.push(String(err)));
    await namespace.remove().catch((err) => problems.push(String(err)));
    if (problems.length) throw new Error(problems.join('\n'));
  };
  try {
    await kubectl(['apply', '-f', '-'], { input: worldManifests(ns, app) });
    await Promise.all([
      kubectl(['-n', ns, 'rollout', 'status', `deploy/${app}`, '--timeout=180s'], { timeoutMs: 200_000 }),
      kubectl(['-n', ns, 'rollout', 'status', 'deploy/echo', '--timeout=180s'], { timeoutMs: 200_000 }),
      kubectl(['-n', ns, 'rollout', 'status', 'sts/db', '--timeout=180s'], { timeoutMs: 200_000 }),
      kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=180s'], {
        timeoutMs: 200_000,
      }),
    ]);
    config = (await developerIn(ns)).kubeconfig;
    upDone = true;
    containers = await devboxUp(app, ns, config);
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }
  const { service, sidecar } = containers;
  return {
    ns,
    app,
    service,
    sidecar,
    down,
    teardown,
    async local(script, args = [], timeoutMs = 30_000) {
      const result = await docker(['exec', service, 'node', '-e', script, ...args], timeoutMs);
      if (result.code !== 0) {
        throw new Error(`node in ${service} exited ${result.code}: ${result.stderr}${result.stdout}`);
      }
      return result.stdout;
    },
    inPod(script, args = [], timeoutMs = 30_000) {
      return kubectl(['-n', ns, 'exec', 'client', '--', 'node', '-e', script, ...args], { timeoutMs });
    },
    async sidecarStatus() {
      const result = await docker([
        'exec',
        sidecar,
        'node',
        '/devbox/sidecar.mjs',
        'status',
        '/devbox/config.json',
      ]);
      if (result.code !== 0) throw new Error(`sidecar status failed: ${result.stderr}${result.stdout}`);
      return JSON.parse(result.stdout) as SidecarStatus;
    },
    streamInPod(script, args) {
      return streamLines(join(clusterDir, 'bin', 'kubectl'), [
        '--kubeconfig',
        kubeconfig,
        '-n',
        ns,
        'exec',
        'client',
        '--',
        'node',
        '-e',
        script,
        ...args,
      ]);
    },
  };
}

/** sha256 (hex) of the first `n` bytes `/bytes?n=` serves. */
export function expectedBytesDigest(n: number): string {
  const cipher = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(1 << 20);
  for (let left = n; left > 0; left -= zeros.length) {
    hash.update(cipher.update(left >= zeros.length ? zeros : zeros.subarray(0, left)));
  }
  return hash.digest('hex');
}

/** The ClusterIP of a Service. */
export async function clusterIP(ns: string, service: string): Promise<string> {
  return (await kubectl(['-n', ns, 'get', 'svc', service, '-o', 'jsonpath={.spec.clusterIP}'])).trim();
}

/** A running process's stdout, line by line. */
export interface LineStream {
  readonly process: ChildProcess;
  readonly lines: string[];
  /** Resolves with the first line (already seen or to come) that satisfies `match`. */
  waitFor(match: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** Resolves once the process has exited, with its exit code and stderr. */
  readonly exited: Promise<{ code: number | null; stderr: string }>;
}

function streamLines(command: string, args: string[]): LineStream {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  let partial = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
    for (const wake of [...waiters]) wake();
  });
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  let ended = false;
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    child.on('close', (code) => {
      ended = true;
      for (const wake of [...waiters]) wake();
      resolve({ code, stderr });
    }),
  );
  return {
    process: child,
    lines,
    exited,
    waitFor(match, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = lines.find(match);
          if (line !== undefined) finish(() => resolve(line));
          else if (ended) finish(() => reject(new Error(`process ended first: ${stderr}`)));
        };
        const finish = (then: () => void) => {
          clearTimeout(timer);
          waiters.delete(check);
          then();
        };
        const timer = setTimeout(
          () =>
            finish(() => reject(new Error(`no matching line within ${timeoutMs} ms: ${lines.slice(-5)}`))),
          timeoutMs,
        );
        waiters.add(check);
        check();
      });
    },
  };
}
