/**
 * The devbox CLI as a user runs it (a child process of the built CLI), pointed
 * at the local cluster with the agent image it can run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { clusterImages, kubeconfig, kubectl } from './cluster.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** Who runs the CLI: a kubeconfig of its own (see developer.ts); the admin's when absent. */
export interface RunAs {
  kubeconfig?: string;
  /** Directory the CLI runs in (default: the test's). */
  cwd?: string;
}

export function devboxEnv(as: RunAs = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    KUBECONFIG: as.kubeconfig ?? kubeconfig,
    DEVBOX_AGENT_IMAGE: clusterImages().runtime,
  };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `devbox args…` to completion. */
export function devbox(args: string[], options: { timeoutMs?: number } & RunAs = {}): Promise<RunResult> {
  const child = startDevbox(args, options);
  return finished(child, options.timeoutMs ?? 180_000);
}

export function startDevbox(
  args: string[],
  as: RunAs = {},
): ChildProcess & { output: { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [cli, ...args], {
    env: devboxEnv(as),
    ...(as.cwd ? { cwd: as.cwd } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout!.on('data', (d: Buffer) => (output.stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output.stderr += d.toString()));
  return Object.assign(child, { output });
}

export function finished(
  child: ChildProcess & { output: { stdout: string; stderr: string } },
  timeoutMs: number,
): Promise<RunResult> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...child.output });
    });
  });
}

/** Resolves once the child's stderr matches `pattern` (or rejects when it exits first). */
export function waitForOutput(
  child: ChildProcess & { output: { stdout: string; stderr: string } },
  pattern: RegExp,
  timeoutMs = 120_000,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${pattern} in:\n${child.output.stderr}`)), timeoutMs);
    const check = () => {
      if (pattern.test(child.output.stderr) || pattern.test(child.output.stdout)) {
        clearTimeout(timer);
        child.stderr!.off('data', check);
        child.stdout!.off('data', check);
        resolve();
      }
    };
    child.stderr!.on('data', check);
    child.stdout!.on('data', check);
    child.on('close', () => reject(new Error(`exited before ${pattern}:\n${child.output.stderr}`)));
    check();
  });
}

/** The specs of the namespace's workloads and Services, without what the API server and controllers manage. */
export async function clusterSnapshot(namespace: string): Promise<Record<string, unknown>> {
  const list = JSON.parse(
    await kubectl([
      '-n',
      namespace,
      'get',
      'deployments,statefulsets,services,configmaps,secrets,serviceaccounts,roles,rolebindings,leases',
      '-o',
      'json',
    ]),
  ) as { items: Record<string, any>[] };
  const out: Record<string, unknown> = {};
  for (const item of list.items) {
    const { metadata, status: _status, ...rest } = item;
    const { resourceVersion, generation, managedFields, uid, creationTimestamp, ...meta } = metadata;
    void resourceVersion;
    void generation;
    void managedFields;
    void uid;
    void creationTimestamp;
    const annotations = { ...(meta.annotations ?? {}) };
    delete annotations['deployment.kubernetes.io/revision'];
    if (Object.keys(annotations).length) meta.annotations = annotations;
    else delete meta.annotations;
    // The root CA and default account are the controllers' own.
    if (item.kind === 'ConfigMap' && metadata.name === 'kube-root-ca.crt') continue;
    if (item.kind === 'ServiceAccount' && metadata.name === 'default') continue;
    out[`${item.kind}/${metadata.name}`] = { ...rest, metadata: meta };
  }
  return out;
}
