/** Foreground mode: the service's output on our terminal, and its exit code. */
import type { Readable, Writable } from 'node:stream';
import type { DockerClient } from './client.js';

/**
 * Copies a container's output (from its start) to `stdout`/`stderr`, which are
 * never ended (they may be the process's own). Resolves when the container's
 * log ends (it stopped) or when `signal` aborts; honours backpressure.
 */
export async function followLogs(
  docker: DockerClient,
  containerId: string,
  stdout: Writable,
  stderr: Writable,
  signal?: AbortSignal,
  /** Unix seconds: only output from then on (a restarted container's earlier runs are not repeated). */
  since?: number,
): Promise<void> {
  if (signal?.aborted) return;
  const streams = await docker.logs(containerId, { follow: true, ...(since !== undefined ? { since } : {}) });
  const stop = () => {
    streams.stdout.destroy();
    streams.stderr.destroy();
  };
  signal?.addEventListener('abort', stop, { once: true });
  try {
    await Promise.all([copy(streams.stdout, stdout), copy(streams.stderr, stderr)]);
  } finally {
    signal?.removeEventListener('abort', stop);
    stop();
  }
}

function copy(source: Readable, target: Writable): Promise<void> {
  return new Promise((resolve) => {
    const finish = () => {
      source.unpipe(target);
      resolve();
    };
    source.once('end', finish);
    source.once('close', finish);
    // A failing log stream (container removed underneath) simply ends the copy.
    source.once('error', finish);
    source.pipe(target, { end: false });
  });
}

/** The container's exit code once it stops; `signal` abandons the wait (rejects with its reason). */
export function waitExit(docker: DockerClient, containerId: string, signal?: AbortSignal): Promise<number> {
  return docker.waitContainer(containerId, { condition: 'not-running', ...(signal ? { signal } : {}) });
}
