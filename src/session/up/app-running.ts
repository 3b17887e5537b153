/**
 * The local app must still be running once the session is ready: an app that crashes at start
 * (a port taken, a missing file, a bad command) would otherwise leave `up` reporting success over
 * a dead container, and in-cluster callers sent to a session with nothing behind it.
 */
import { type DockerClient, lastLogLines } from '../../docker/index.js';
import { DevboxError } from '../../util/errors.js';

/** How long the local app must stay up after it started for `up` to call it running. */
export const APP_SETTLE_MS = 1_000;
const LOG_LINES = 20;

/**
 * Watches the service container until it has run `settleMs`; throws, with its exit code and last
 * log lines, when it exits with a non-zero code meanwhile. Returns a warning when it exited with 0.
 */
export async function checkAppRunning(
  docker: DockerClient,
  containerId: string,
  options: { settleMs?: number; signal?: AbortSignal } = {},
): Promise<string | undefined> {
  const deadline = Date.now() + (options.settleMs ?? APP_SETTLE_MS);
  for (;;) {
    options.signal?.throwIfAborted();
    const info = await docker.inspectContainer(containerId);
    if (!info)
      throw new DevboxError(
        'INTERNAL',
        `the local container ${containerId} disappeared right after it started`,
      );
    if (!info.running && info.status !== 'created') {
      const logs = await lastLogLines(docker, containerId, LOG_LINES);
      if (info.exitCode === 0)
        return `the local app (${info.name}) exited with code 0 right after it started`;
      throw new DevboxError(
        'BAD_INPUT',
        `the local app (${info.name}) exited with code ${info.exitCode} right after it started${logs ? `; its last lines:\n${logs}` : ''}`,
        { hint: 'fix the app, its image or its command (after --), then run devbox up again' },
      );
    }
    if (Date.now() >= deadline) return undefined;
    await new Promise((r) => setTimeout(r, 100));
  }
}
