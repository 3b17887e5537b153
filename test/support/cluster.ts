/**
 * The local test cluster as integration tests see it: its kubeconfig, its
 * kubectl, and the images `cluster:up` built and loaded. A missing cluster
 * fails the test with the command to run; it never skips.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const clusterDir = process.env.DEVBOX_CLUSTER_DIR ?? join(homedir(), '.devbox', 'cluster');
export const kubeconfig = join(clusterDir, 'kubeconfig');
const kubectlPath = join(clusterDir, 'bin', 'kubectl');

export interface ClusterImages {
  runtime: string;
  busybox: string;
  pause: string;
}

export function requireCluster(): void {
  if (!existsSync(kubeconfig) || !existsSync(kubectlPath)) {
    throw new Error(`No local cluster at ${clusterDir}. Start it with: npm run cluster:up`);
  }
}

export function clusterImages(): ClusterImages {
  requireCluster();
  return JSON.parse(readFileSync(join(clusterDir, 'images.json'), 'utf8')) as ClusterImages;
}

/** Runs kubectl against the local cluster and returns its stdout. */
export async function kubectl(
  args: string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<string> {
  requireCluster();
  const child = spawn(kubectlPath, ['--kubeconfig', kubeconfig, ...args], { stdio: 'pipe' });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.end(options.input ?? '');
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  clearTimeout(timer);
  if (code !== 0) {
    throw new Error(`kubectl ${args.join(' ')} failed (${code}): ${Buffer.concat(err).toString().trim()}`);
  }
  return Buffer.concat(out).toString();
}

export async function apply(manifest: string): Promise<void> {
  await kubectl(['apply', '-f', '-'], { input: manifest });
}

/**
 * A pod running `node -e script …args` from the cluster's runtime image, labelled `app: <app>`
 * and ready once `readyPort` accepts connections.
 */
export function nodePodManifest(pod: {
  name: string;
  namespace: string;
  app: string;
  script: string;
  args?: string[];
  readyPort: number;
}): string {
  return `
apiVersion: v1
kind: Pod
metadata: { name: ${pod.name}, namespace: ${pod.namespace}, labels: { app: ${pod.app} } }
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: ${pod.name}
      image: ${clusterImages().runtime}
      imagePullPolicy: Never
      command: ${JSON.stringify(['node', '-e', pod.script, ...(pod.args ?? [])])}
      readinessProbe: { tcpSocket: { port: ${pod.readyPort} }, periodSeconds: 1 }
`;
}

/** A namespace of the test's own, deleted (without waiting) by the returned function. */
export async function testNamespace(prefix: string): Promise<{ name: string; remove: () => Promise<void> }> {
  const name = `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
  await kubectl(['create', 'namespace', name]);
  return { name, remove: async () => void (await kubectl(['delete', 'namespace', name, '--wait=false'])) };
}

/** Starts `kubectl port-forward` and resolves with the local port once it listens. */
export async function portForward(
  namespace: string,
  target: string,
  remotePort: number,
  config = kubeconfig,
): Promise<{ localPort: number; process: ChildProcess }> {
  requireCluster();
  const child = spawn(
    kubectlPath,
    ['--kubeconfig', config, '-n', namespace, 'port-forward', target, `:${remotePort}`],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const localPort = await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(
      () => reject(new Error(`port-forward to ${target} did not start: ${text}`)),
      30_000,
    );
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const match = /127\.0\.0\.1:(\d+) ->/.exec(text);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
    child.on('exit', () => reject(new Error(`port-forward exited: ${text}`)));
  });
  return { localPort, process: child };
}

export async function docker(
  args: string[],
  timeoutMs = 60_000,
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run('docker', args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
  }
}

/** Names of the local containers devbox made for sessions in `namespace`, running or not, sorted. */
export async function localContainers(namespace: string): Promise<string[]> {
  const ps = await docker([
    'ps',
    '-a',
    '--filter',
    `label=devbox.namespace=${namespace}`,
    '--format',
    '{{.Names}}',
  ]);
  if (ps.code !== 0) throw new Error(`docker ps: ${ps.stderr}`);
  return ps.stdout.split('\n').filter(Boolean).sort();
}
