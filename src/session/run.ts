/**
 * The life of a session in the foreground of a terminal: `up`, then follow the
 * service container's output until it exits or the user interrupts (Ctrl-C,
 * SIGTERM, or the terminal closing), then end this session with `down`.
 *
 * A first signal stops what runs and undoes it; a second one abandons the
 * clean-up (records in the cluster let `devbox clean` finish it).
 */
import type { Writable } from 'node:stream';
import type { DockerClient } from '../docker/index.js';
import { errorText, isDevboxError } from '../util/errors.js';
import type { DownResult } from './down.js';
import type { DevLoop, OnChange, SyncRule } from './sync/index.js';
import type { UpOptions, UpResult } from './up.js';

export interface RunOptions extends Omit<UpOptions, 'signal'> {
  /** Return once the session is ready, leaving it running. */
  detach: boolean;
  /** Where the service container's stdout and stderr go while it runs in the foreground. */
  logs: { stdout: Writable; stderr: Writable };
  /** Called once the session is ready, before its output is followed. */
  onReady: (result: UpResult) => void;
  /** Lines for the user about the session's life (stopping, the container's exit). */
  notice: (text: string) => void;
  /**
   * `--sync LOCAL:CONTAINER` flags and what a change does: files are copied into the service
   * container once it runs, then kept in sync while the session runs in the foreground.
   */
  sync?: { flags: string[]; onChange: OnChange; project: string };
}

export interface RunResult {
  /** The session `up` started (none when a signal stopped it before it was ready). */
  up?: UpResult;
  /** The `down` that ended a foreground session (none when detached). */
  down?: DownResult;
  /** The local container's exit code, or 128 + the signal's number when the user interrupted. */
  exitCode: number;
}

/** The signals that end a foreground session, with the exit code a shell gives them. */
const ENDING_SIGNALS = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
type EndingSignal = keyof typeof ENDING_SIGNALS;

/**
 * Until `stop` is called, the first ending signal aborts `controller`; a second one abandons the
 * clean-up. `received()` says which signal came (undefined: none), and its exit code.
 */
export function onEndingSignals(
  controller: AbortController,
  notice: (text: string) => void,
): { received: () => { signal: EndingSignal; exitCode: number } | undefined; stop: () => void } {
  let received: EndingSignal | undefined;
  const onSignal = (signal: EndingSignal) => {
    if (received) {
      notice('Abandoning the clean-up; run `devbox clean` to finish it.');
      process.exit(ENDING_SIGNALS[signal]);
    }
    received = signal;
    notice('Stopping: undoing what was done…');
    controller.abort(new Error(`interrupted (${signal})`));
  };
  const signals = Object.keys(ENDING_SIGNALS) as EndingSignal[];
  for (const s of signals) process.on(s, onSignal);
  return {
    received: () => (received ? { signal: received, exitCode: ENDING_SIGNALS[received] } : undefined),
    stop: () => {
      for (const s of signals) process.off(s, onSignal);
    },
  };
}

export async function runSession(options: RunOptions): Promise<RunResult> {
  const { detach, logs, onReady, notice, sync, ...upOptions } = options;
  const controller = new AbortController();
  const signals = onEndingSignals(controller, notice);
  const received = () => signals.received()?.signal;
  try {
    // Sync paths are checked before anything changes.
    const rules = sync?.flags.length
      ? await (await import('./sync/index.js')).resolveSyncRules(sync.flags, sync.project)
      : [];
    const { up } = await import('./up.js');
    let result: UpResult;
    try {
      result = await up({ ...upOptions, signal: controller.signal });
    } catch (err) {
      // Interrupted before the session was ready: up has undone its steps (else it says what is left).
      const signal = received();
      if (signal && !isDevboxError(err, 'INTERNAL')) {
        notice('Stopped before the session was ready; what up had changed is undone.');
        return { exitCode: ENDING_SIGNALS[signal] };
      }
      throw err;
    }
    onReady(result);
    if (detach) return { up: result, exitCode: 0 };

    const code = await followUntilEnd(options, result, controller.signal, rules);
    if (code !== undefined)
      notice(exitNotice({ code, lastLines: await lastLinesAfter(code, result.containers.service) }));
    const { down } = await import('./down.js');
    const ended = await down({
      target: options.target,
      workload: result.workload,
      session: result.session,
      keepAgent: false,
      progress: options.progress,
    });
    return { up: result, down: ended, exitCode: code ?? ENDING_SIGNALS[received() ?? 'SIGINT'] };
  } finally {
    signals.stop();
  }
}

const EXIT_LOG_LINES = 10;

/** How the local app ended a foreground session, its last lines with an error code. */
export function exitNotice({ code, lastLines }: { code: number; lastLines: string }): string {
  const lines = code !== 0 && lastLines ? ` Its last lines:\n${lastLines}` : '';
  return `The local container exited with code ${code}; ending the session.${lines}`;
}

/** The app's last log lines after a failure: its output may have scrolled far past by then. */
async function lastLinesAfter(code: number, container: string): Promise<string> {
  if (code === 0) return '';
  const { createDockerClient, lastLogLines } = await import('../docker/index.js');
  // By name: a rebuild of the dev loop replaces the container, the name stays.
  return lastLogLines(createDockerClient(), container, EXIT_LOG_LINES);
}

/** Follows the service container; resolves with its exit code, or undefined once `signal` aborts. */
export async function followUntilEnd(
  options: RunOptions,
  result: UpResult,
  interrupted: AbortSignal,
  rules: readonly SyncRule[],
): Promise<number | undefined> {
  const { createDockerClient } = await import('../docker/index.js');
  const { followPodFiles } = await import('./follow.js');
  // Following stops with the session: on a signal, or once the container has exited.
  const ended = new AbortController();
  const signal = AbortSignal.any([interrupted, ended.signal]);
  const docker = createDockerClient();
  if (result.container) {
    followPodFiles({
      target: options.target,
      workload: result.workload,
      namespace: result.namespace,
      // By name: a rebuild replaces the container, the name stays.
      serviceId: result.containers.service,
      container: result.container,
      signal,
      onWarning: (text) => options.notice(`warning: ${text}`),
    }).catch((err) => options.notice(`warning: volumes no longer follow the cluster: ${errorText(err)}`));
  }
  let loop: DevLoop | undefined;
  if (rules.length && options.sync) {
    const { startDevLoop } = await import('./sync/index.js');
    loop = await startDevLoop({
      docker,
      serviceId: result.containers.serviceId,
      sidecar: result.containers.sidecar,
      rules,
      project: options.sync.project,
      onChange: options.sync.onChange,
      ...(options.build ? { build: options.build } : {}),
      notice: options.notice,
    });
  }
  try {
    const code = await followService(docker, options, result.containers.serviceId, loop, signal);
    return interrupted.aborted ? undefined : code;
  } finally {
    ended.abort();
    await loop?.close();
  }
}

/**
 * Follows the service container's output until it exits (its code) or `signal` aborts (undefined).
 * With a dev loop an exit does not end the session: the loop's next change starts the app again,
 * and a restarted or replaced container is followed on.
 */
async function followService(
  docker: DockerClient,
  options: RunOptions,
  serviceId: string,
  loop: DevLoop | undefined,
  signal: AbortSignal,
): Promise<number | undefined> {
  const { followLogs, waitExit } = await import('../docker/index.js');
  const aborted = new Promise<undefined>((resolve) => {
    if (signal.aborted) resolve(undefined);
    signal.addEventListener('abort', () => resolve(undefined), { once: true });
  });
  let since: number | undefined;
  for (;;) {
    const id = loop?.serviceId ?? serviceId;
    const following = followLogs(docker, id, options.logs.stdout, options.logs.stderr, signal, since);
    const code = await Promise.race([waitExit(docker, id, signal).catch(() => undefined), aborted]);
    await following.catch(() => {});
    if (!loop || signal.aborted) return code;
    since = Math.floor(Date.now() / 1000);
    await loop.idle();
    const now = await docker.inspectContainer(loop.serviceId);
    if (now?.running) continue;
    options.notice(
      `The local container exited with code ${code ?? now?.exitCode}; the next change starts it again (Ctrl-C ends the session).`,
    );
    await Promise.race([waitRunning(docker, loop, signal), aborted]);
    if (signal.aborted) return undefined;
  }
}

/** Resolves once the loop's container runs again (after a change). */
async function waitRunning(docker: DockerClient, loop: DevLoop, signal: AbortSignal): Promise<void> {
  while (!signal.aborted) {
    await new Promise<void>((resolve) => loop.onCycle(() => resolve()));
    if ((await docker.inspectContainer(loop.serviceId))?.running) return;
  }
}
