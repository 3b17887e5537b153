/**
 * Shared pieces of the Docker integration tests: one client, containers
 * labelled for cleanup, and runs bounded in time.
 */
import { execFile } from 'node:child_process';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { type ContainerSpec, createDockerClient } from '../../../src/docker/client.js';
import { findStaticBusybox } from '../../../src/docker/runtime-image.js';

const run = promisify(execFile);

export const docker = createDockerClient();

/** Every container and volume a test creates carries this label. */
export const TEST_LABELS = { 'devbox.test': 'docker-integration' };

export async function removeTestContainers(): Promise<void> {
  for (const c of await docker.listContainers({ labels: TEST_LABELS })) {
    await docker.removeContainer(c.id, { force: true, volumes: true });
  }
}

export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks).toString();
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Start a labelled container; the caller removes it (or `removeTestContainers` does). */
export async function startContainer(spec: ContainerSpec): Promise<string> {
  const id = await docker.createContainer({ ...spec, labels: { ...TEST_LABELS, ...spec.labels } });
  await docker.startContainer(id);
  return id;
}

/** Run a container to its end (bounded) and return its exit code and output. */
export async function runContainer(
  spec: ContainerSpec,
  timeoutMs = 30_000,
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const id = await docker.createContainer({ ...spec, labels: { ...TEST_LABELS, ...spec.labels } });
  try {
    const exited = docker.waitContainer(id, { condition: 'next-exit' });
    await docker.startContainer(id);
    const exitCode = await withTimeout(
      exited,
      timeoutMs,
      `container ${spec.image} ${spec.cmd?.join(' ') ?? ''}`,
    );
    const { stdout, stderr } = await docker.logs(id);
    const [out, err] = await Promise.all([readAll(stdout), readAll(stderr)]);
    return { exitCode, stdout: out, stderr: err };
  } finally {
    await docker.removeContainer(id, { force: true });
  }
}

/** Follow a container's stdout until `pattern` appears. */
export async function waitForOutput(id: string, pattern: RegExp, timeoutMs = 15_000): Promise<string> {
  const { stdout, stderr } = await docker.logs(id, { follow: true });
  stderr.resume();
  let seen = '';
  const found = (async () => {
    for await (const chunk of stdout) {
      seen += chunk.toString();
      if (pattern.test(seen)) return seen;
    }
    throw new Error(`container ${id} ended without printing ${pattern}; output: ${seen}`);
  })();
  try {
    return await withTimeout(found, timeoutMs, `waiting for ${pattern} from ${id}`);
  } finally {
    stdout.destroy();
    stderr.destroy();
  }
}

/**
 * The busybox image is built from busybox-static. Install it when missing
 * and possible (root with apt-get); otherwise fail with the command to run.
 */
export async function requireStaticBusybox(): Promise<void> {
  if (await findStaticBusybox()) return;
  if (process.getuid?.() === 0) {
    try {
      await run('apt-get', ['install', '-y', '--no-install-recommends', 'busybox-static'], {
        timeout: 120_000,
      });
    } catch {
      // reported below
    }
    if (await findStaticBusybox()) return;
  }
  throw new Error('These tests need a static busybox: run `sudo apt-get install busybox-static`');
}
