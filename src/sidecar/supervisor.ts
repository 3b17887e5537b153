/**
 * Restarts the sidecar daemon inside its container when it crashes. A container restart (Docker's
 * restart policy) would not do: the service container joins the sidecar's network namespace, and
 * a restarted sidecar gets a new one, leaving the app with nothing but a dead loopback. Respawned
 * in the same container, the daemon finds the same namespace, programs its NAT again and reopens
 * its tunnels; the app keeps its network and its open connections to its own ports.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from '../util/log.js';

/** Exit code of a daemon whose configuration is wrong: starting it again would not help. */
export const CONFIG_EXIT = 2;

export interface SuperviseOptions {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  log: Logger;
  /** First delay before a restart; doubles up to `maxDelayMs`, back to the first after a stable run. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** A run this long counts as stable. */
  stableAfterMs?: number;
}

export interface Supervised {
  /** The daemon's exit code once it ended after `stop`, or a configuration error. */
  readonly done: Promise<number>;
  /** Passes `signal` to the daemon and starts it no more. */
  stop(signal: NodeJS.Signals): void;
  readonly restarts: number;
}

/** Runs the daemon and starts it again whenever it exits on its own, except for a configuration error. */
export function supervise(options: SuperviseOptions): Supervised {
  const first = options.firstDelayMs ?? 500;
  const max = options.maxDelayMs ?? 30_000;
  const stableAfter = options.stableAfterMs ?? 60_000;
  let delay = first;
  let child: ChildProcess | undefined;
  let stopping = false;
  let restarts = 0;
  let timer: NodeJS.Timeout | undefined;
  let resolveDone: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve;
  });
  const stop = (signal: NodeJS.Signals) => {
    stopping = true;
    clearTimeout(timer);
    if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
    else resolveDone(0);
  };
  const start = () => {
    const startedAt = Date.now();
    child = spawn(options.command, options.args, { env: options.env, stdio: 'inherit' });
    child.once('exit', (code, signal) => {
      const exit = code ?? (signal ? 128 : 1);
      if (stopping) return resolveDone(code ?? 0);
      if (exit === CONFIG_EXIT) {
        options.log.error('sidecar configuration refused; not restarting it');
        return resolveDone(exit);
      }
      if (Date.now() - startedAt >= stableAfter) delay = first;
      restarts++;
      options.log.error('sidecar exited; restarting it in the same network namespace', {
        code,
        signal,
        restarts,
        inMs: delay,
      });
      timer = setTimeout(start, delay);
      delay = Math.min(delay * 2, max);
    });
  };
  start();
  return {
    done,
    stop,
    get restarts() {
      return restarts;
    },
  };
}
