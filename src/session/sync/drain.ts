/**
 * Around a stop of the local app (restart, rebuild), its sidecar drains it first: new in-cluster
 * connections go to the pod's app and kept-alive ones are closed at a quiet moment, so no caller
 * meets a connection closed under its request (src/sidecar/inbound-drain.ts).
 */
import { type DockerClient, SIDECAR_BUNDLE_PATH, SIDECAR_CONFIG_PATH } from '../../docker/index.js';
import { errorText } from '../../util/errors.js';

/** How long a drain waits for kept-alive connections to go quiet (a client asking once a second does within ~1.3 s). */
const DRAIN_WAIT_MS = 2_000;

export async function whileDrained<T>(
  docker: DockerClient,
  sidecar: string | undefined,
  run: () => Promise<T>,
  onWarning: (text: string) => void,
): Promise<T> {
  if (!sidecar) return run();
  const inbound = (...args: string[]) =>
    docker.exec(sidecar, ['node', SIDECAR_BUNDLE_PATH, 'inbound', SIDECAR_CONFIG_PATH, ...args], {
      timeoutMs: DRAIN_WAIT_MS + 10_000,
    });
  await inbound('drain', String(DRAIN_WAIT_MS)).then(
    (r) => r.exitCode !== 0 && onWarning(`the app was not drained first: ${(r.stdout || r.stderr).trim()}`),
    (err: unknown) => onWarning(`the app was not drained first: ${errorText(err)}`),
  );
  try {
    return await run();
  } finally {
    await inbound('resume').then(
      (r) =>
        r.exitCode !== 0 &&
        onWarning(`the sidecar did not take connections again: ${(r.stdout || r.stderr).trim()}`),
      (err: unknown) => onWarning(`the sidecar did not take connections again: ${errorText(err)}`),
    );
  }
}
