/**
 * Several workloads brought up by one command, as one unit: they come up one after the other,
 * and if one fails (or Ctrl-C comes) the sessions this command already started are ended too, so
 * nothing stays half up. Once all are up, calls between their local containers are short-circuited
 * on the Docker engine (local-routes.ts). In the foreground their output is followed together, each line prefixed
 * with its workload; one Ctrl-C, or one app exiting, ends them all.
 */
import { Writable } from 'node:stream';
import { errorText, isDevboxError } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import type { DownResult } from './down.js';
import { followUntilEnd, onEndingSignals, type RunOptions } from './run.js';
import type { SyncRule } from './sync/index.js';
import type { UpResult } from './up.js';

/** One workload's share: everything `runSession` takes but what the group decides. */
export type WorkloadRun = Omit<RunOptions, 'detach' | 'onReady' | 'notice'>;

export interface ManyOptions {
  runs: WorkloadRun[];
  /** Return once every session is ready, leaving them running. */
  detach: boolean;
  /** Called once every session is ready, in the order of `runs`. */
  onReady: (results: UpResult[]) => void;
  notice: (text: string) => void;
}

export interface ManyResult {
  ups: UpResult[];
  downs: DownResult[];
  /** The first app's exit code that ended the group, or 128 + the signal's number. */
  exitCode: number;
}

interface Started {
  run: RunOptions;
  result: UpResult;
  rules: SyncRule[];
}

export async function runSessions(options: ManyOptions): Promise<ManyResult> {
  const { notice } = options;
  const controller = new AbortController();
  const signals = onEndingSignals(controller, notice);
  try {
    const runs = options.runs.map((run) => labelled(run, notice));
    const rules = await resolveAllSyncRules(runs);
    const started: Started[] = [];
    try {
      const { up } = await import('./up.js');
      for (const [i, run] of runs.entries()) {
        const { detach: _d, logs: _l, onReady: _r, notice: _n, sync: _s, ...upOptions } = run;
        const result = await up({ ...upOptions, signal: controller.signal });
        started.push({ run, result, rules: rules[i]! });
      }
    } catch (err) {
      if (started.length) {
        notice(
          `Ending the sessions this command started (${started.map((s) => s.result.workload).join(', ')}): nothing stays half up.`,
        );
        await endAll(started, notice);
      }
      const signal = signals.received();
      if (signal && !isDevboxError(err, 'INTERNAL')) {
        notice('Stopped before every session was ready; what up had changed is undone.');
        return { ups: [], downs: [], exitCode: signal.exitCode };
      }
      throw err;
    }
    const ups = started.map((s) => s.result);
    await connectToEachOther(options.runs[0]!, ups, notice);
    options.onReady(ups);
    if (options.detach) return { ups, downs: [], exitCode: 0 };

    const exit = await followAll(started, controller.signal);
    if (exit)
      notice(`The local container of ${exit.workload} exited with code ${exit.code}; ending every session.`);
    const downs = await endAll(started, notice);
    return { ups, downs, exitCode: exit?.code ?? signals.received()?.exitCode ?? 130 };
  } finally {
    signals.stop();
  }
}

/** The local short-circuit: calls between these workloads' containers stay on the Docker engine. */
async function connectToEachOther(run: WorkloadRun, ups: UpResult[], notice: (text: string) => void) {
  if (ups.length < 2) return;
  const { connectLocalSessions } = await import('./local-routes.js');
  const warnings = await run.progress.step('Connecting the local workloads to each other directly', () =>
    connectLocalSessions(run.target, ups),
  );
  for (const w of warnings) notice(`warning: ${w}`);
}

/** Follows every session until one's app exits (its workload and code) or `interrupted` aborts. */
async function followAll(
  started: Started[],
  interrupted: AbortSignal,
): Promise<{ workload: string; code: number } | undefined> {
  const ended = new AbortController();
  const signal = AbortSignal.any([interrupted, ended.signal]);
  let first: { workload: string; code: number } | undefined;
  await Promise.all(
    started.map(async ({ run, result, rules }) => {
      const code = await followUntilEnd(run, result, signal, rules);
      if (code !== undefined && !signal.aborted) {
        first = { workload: result.workload, code };
        ended.abort();
      }
    }),
  );
  return first;
}

/** Ends each session with `down` (only its own session id); a failure is told and the rest go on. */
async function endAll(started: Started[], notice: (text: string) => void): Promise<DownResult[]> {
  const { down } = await import('./down.js');
  const downs: DownResult[] = [];
  for (const { run, result } of [...started].reverse()) {
    try {
      const ended = await down({
        target: run.target,
        workload: result.workload,
        session: result.session,
        keepAgent: false,
        progress: run.progress,
      });
      for (const w of ended.warnings) notice(`warning: ${result.workload}: ${w}`);
      downs.unshift(ended);
    } catch (err) {
      notice(
        `warning: ending ${result.workload} failed: ${errorText(err)}; run \`devbox down ${result.workload}\` to finish it`,
      );
    }
  }
  return downs;
}

/** Every run's sync rules, checked before anything changes; all problems at once. */
async function resolveAllSyncRules(runs: RunOptions[]): Promise<SyncRule[][]> {
  const { resolveSyncRules } = await import('./sync/index.js');
  const problems: string[] = [];
  const all = await Promise.all(
    runs.map(async (run) => {
      if (!run.sync?.flags.length) return [];
      return resolveSyncRules(run.sync.flags, run.sync.project).catch((err: unknown) => {
        problems.push(`${run.workload}: ${errorText(err)}`);
        return [];
      });
    }),
  );
  if (problems.length) {
    const { DevboxError } = await import('../util/errors.js');
    throw new DevboxError('BAD_INPUT', problems.join('\n'), {
      hint: 'Sync paths name files or directories of the project (the directory devbox runs in).',
    });
  }
  return all;
}

/** A run whose progress steps and container output name its workload. */
function labelled(run: WorkloadRun, notice: (text: string) => void): RunOptions {
  return {
    ...run,
    detach: false,
    onReady: () => {},
    notice: (text) => notice(`${run.workload}: ${text}`),
    progress: prefixedProgress(run.progress, `${run.workload}: `),
    logs: {
      stdout: prefixedLines(run.logs.stdout, `${run.workload} | `),
      stderr: prefixedLines(run.logs.stderr, `${run.workload} | `),
    },
  };
}

function prefixedProgress(progress: Progress, prefix: string): Progress {
  return {
    step: (title, run) => progress.step(`${prefix}${title}`, run),
    note: (text) => progress.note(`${prefix}${text}`),
  };
}

/** Writes whole lines to `out`, each behind `prefix` (a partial line waits for its end). */
export function prefixedLines(out: Writable, prefix: string): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer | string, _encoding, done) {
      const lines = (pending + chunk.toString()).split('\n');
      pending = lines.pop() ?? '';
      if (lines.length) out.write(lines.map((l) => `${prefix}${l}\n`).join(''));
      done();
    },
    final(done) {
      if (pending) out.write(`${prefix}${pending}\n`);
      done();
    },
  });
}
