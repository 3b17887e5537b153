/**
 * Whether a sidecar can carry the service's traffic yet, read from the
 * daemon's own status document through `docker exec` (the status endpoint
 * listens on the sidecar's loopback only, which nothing else can reach).
 */
import type { SidecarStatus } from '../sidecar/sidecar.js';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';
import type { DockerClient } from './client.js';
import { SIDECAR_BUNDLE_PATH, SIDECAR_CONFIG_PATH } from './session-spec.js';

export type { SidecarStatus };

/** The verdict on one status document. */
export interface SidecarReadiness {
  ready: boolean;
  /** Why not (or `ready`), in words for an error message. */
  reason: string;
}

/**
 * Ready means: a tunnel to an agent pod is up, the Service and EndpointSlice
 * watches have listed once, and every cluster address added so far listens on
 * all its ports (or has failed, which the status reports). Addresses failing is
 * not waited for: the status shows them and the session still works for the rest.
 */
export function sidecarReadiness(status: SidecarStatus): SidecarReadiness {
  const lastError = status.lastErrors?.at(-1);
  const errorNote = lastError ? `; last error: ${lastError.what}: ${lastError.error}` : '';
  const tunnels = status.tunnels ?? [];
  if (!tunnels.some((t) => t.state === 'up')) {
    if (tunnels.length === 0)
      return {
        ready: false,
        reason: `no ready agent pod found in namespace ${status.namespace}${errorNote}`,
      };
    const states = tunnels
      .map((t) => `${t.pod} ${t.state}${t.lastError ? ` (${t.lastError})` : ''}`)
      .join(', ');
    return { ready: false, reason: `no tunnel up yet: ${states}${errorNote}` };
  }
  const unsynced = Object.entries(status.watches ?? {})
    .filter(([name, w]) => name !== 'pods' && !w.synced)
    .map(([name]) => name);
  if (unsynced.length) return { ready: false, reason: `still listing ${unsynced.join(' and ')}${errorNote}` };
  const pending = (status.addresses ?? []).filter((a) => !a.error && a.listening.length < a.ports.length);
  if (pending.length)
    return {
      ready: false,
      reason: `still opening listeners on ${pending.map((a) => a.ip).join(', ')}${errorNote}`,
    };
  return { ready: true, reason: 'ready' };
}

export interface WaitReadyOptions {
  /** Default 60 s. */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Between polls; default 500 ms. */
  intervalMs?: number;
  /** Each status read, for progress. */
  onStatus?: (status: SidecarStatus, readiness: SidecarReadiness) => void;
  /** The command printing the status JSON (default `node SIDECAR_BUNDLE_PATH status SIDECAR_CONFIG_PATH`). */
  statusCommand?: string[];
}

const LOG_LINES = 20;

/**
 * Polls the sidecar's status until it is ready and returns that status.
 * Fails at once (TUNNEL, with the sidecar's last log lines) if the container
 * stops, and with TIMEOUT naming the last status when time runs out.
 */
export async function waitSidecarReady(
  docker: DockerClient,
  sidecarId: string,
  options: WaitReadyOptions = {},
): Promise<SidecarStatus> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const intervalMs = options.intervalMs ?? 500;
  const command = options.statusCommand ?? ['node', SIDECAR_BUNDLE_PATH, 'status', SIDECAR_CONFIG_PATH];
  const deadline = Date.now() + timeoutMs;
  let last = 'the status endpoint has not answered yet';
  for (;;) {
    options.signal?.throwIfAborted();
    await assertRunning(docker, sidecarId);
    try {
      const status = await readSidecarStatus(docker, sidecarId, {
        command,
        timeoutMs: Math.max(1000, Math.min(5000, deadline - Date.now())),
        ...(options.signal ? { signal: options.signal } : {}),
      });
      const readiness = sidecarReadiness(status);
      options.onStatus?.(status, readiness);
      if (readiness.ready) return status;
      last = readiness.reason;
    } catch (err) {
      options.signal?.throwIfAborted();
      if (err instanceof StatusCommandFailed) last = err.message;
      else {
        if (isDevboxError(err, 'CONFLICT')) await assertRunning(docker, sidecarId);
        last = `reading the status failed: ${errorText(err)}`;
      }
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new DevboxError(
        'TIMEOUT',
        `The sidecar was not ready within ${Number((timeoutMs / 1000).toFixed(1))}s: ${last}`,
        {
          hint: 'Check that the workload has a Running and Ready pod with the devbox agent (`devbox status`), and the sidecar logs (`docker logs <sidecar>`).',
        },
      );
    }
    await sleep(Math.min(intervalMs, left), options.signal);
  }
}

/** The status command ran and failed (the daemon is not listening yet, or crashed). */
class StatusCommandFailed extends DevboxError {}

/** One read of the sidecar's status document, through `docker exec`. */
export async function readSidecarStatus(
  docker: DockerClient,
  sidecarId: string,
  options: { command?: string[]; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<SidecarStatus> {
  const command = options.command ?? ['node', SIDECAR_BUNDLE_PATH, 'status', SIDECAR_CONFIG_PATH];
  const result = await docker.exec(sidecarId, command, {
    timeoutMs: options.timeoutMs ?? 10_000,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  if (result.exitCode !== 0) {
    throw new StatusCommandFailed(
      'TUNNEL',
      `the status command failed (exit ${result.exitCode}): ${lastLine(result.stderr || result.stdout)}`,
    );
  }
  return parseStatus(result.stdout);
}

function parseStatus(text: string): SidecarStatus {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null) throw new Error('not an object');
    return value as SidecarStatus;
  } catch (err) {
    throw new DevboxError('PROTOCOL', `The sidecar's status is not JSON: ${text.slice(0, 200)}`, {
      cause: err,
    });
  }
}

async function assertRunning(docker: DockerClient, id: string): Promise<void> {
  const info = await docker.inspectContainer(id);
  if (info?.running) return;
  const logs = info ? await lastLogLines(docker, id, LOG_LINES) : '';
  const what = info ? `exited with code ${info.exitCode}` : 'was removed';
  throw new DevboxError(
    'TUNNEL',
    `The sidecar container ${info?.name ?? id} ${what}${logs ? `:\n${logs}` : ''}`,
    {
      hint: `See all of its output with \`docker logs ${info?.name ?? id}\`.`,
    },
  );
}

/** The last `count` lines of a container's output (stdout and stderr interleaved by arrival). */
export async function lastLogLines(docker: DockerClient, id: string, count: number): Promise<string> {
  try {
    const { stdout, stderr } = await docker.logs(id, { tail: count });
    const chunks: string[] = [];
    await Promise.all(
      [stdout, stderr].map(async (stream) => {
        for await (const chunk of stream) chunks.push(chunk.toString());
      }),
    );
    return chunks.join('').trimEnd().split('\n').slice(-count).join('\n');
  } catch {
    return '';
  }
}

function lastLine(text: string): string {
  return text.trim().split('\n').at(-1) ?? '';
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
      resolve();
    };
    const aborted = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', aborted, { once: true });
  });
}
