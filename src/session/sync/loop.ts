/**
 * The dev loop of a foreground session: the `--sync` rules are copied into the
 * service container whole, then watched (`fs.watch`, recursive) and only what
 * changed is sent after a short quiet period, deletions included. Then, per
 * `--on-change`: `restart` restarts the service container (the sidecar, which
 * owns the network namespace, stays), `rebuild` builds the image again and
 * replaces the service container, `none` leaves it to an app that reloads itself.
 *
 * One cycle runs at a time; changes made during a cycle start another. A cycle
 * that fails keeps the previous snapshot, so its changes are sent again by the
 * next one: nothing half-synced counts as done.
 */
import { type FSWatcher, watch } from 'node:fs';
import { dirname } from 'node:path';
import { buildDirectory, type DockerClient } from '../../docker/index.js';
import { errorText } from '../../util/errors.js';
import { diffSnapshots, isEmpty, type Snapshot, takeSnapshot } from './changes.js';
import { replaceServiceContainer } from './replace.js';
import type { OnChange, SyncRule } from './rules.js';
import { applyChanges, type RuleChanges } from './transfer.js';

export interface DevLoopOptions {
  docker: DockerClient;
  /** The service container as `up` started it. */
  serviceId: string;
  rules: readonly SyncRule[];
  /** The project directory (where `.dockerignore` files are looked up to). */
  project: string;
  onChange: OnChange;
  /** With `rebuild`: what `up --build` built. */
  build?: { dir: string; dockerfile?: string };
  /** Quiet period after the last file event before a cycle starts (default 50 ms). */
  debounceMs?: number;
  /** One line per cycle (what was synced, restarted, rebuilt, or why not). */
  notice: (text: string) => void;
}

/** One finished cycle, for callers that measure the loop. */
export interface Cycle {
  /** Files and directories written, paths deleted. */
  written: number;
  deleted: number;
  action: 'none' | 'restarted' | 'started' | 'rebuilt' | 'failed';
  /** When the first file event of the cycle came in, and when the cycle ended (ms since epoch). */
  changedAt: number;
  doneAt: number;
}

export interface DevLoop {
  /** The service container now (a rebuild replaces it). */
  readonly serviceId: string;
  /** Resolves once no cycle is running or waiting. */
  idle(): Promise<void>;
  /** Called after each cycle. */
  onCycle(listener: (cycle: Cycle) => void): void;
  /** Stops watching and waits for a cycle under way. */
  close(): Promise<void>;
}

/** Syncs everything once (restarting the app with `restart`), then follows changes. */
export async function startDevLoop(options: DevLoopOptions): Promise<DevLoop> {
  const { docker, rules, project, notice } = options;
  const debounceMs = options.debounceMs ?? 50;
  let serviceId = options.serviceId;
  const snapshots = new Map<SyncRule, Snapshot>(rules.map((r) => [r, new Map()]));
  const listeners: ((cycle: Cycle) => void)[] = [];
  let closed = false;
  let running: Promise<void> | undefined;
  let pending = false;
  let firstEventAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let armed = false;

  const collect = async (base: (rule: SyncRule) => Snapshot): Promise<RuleChanges[]> => {
    const sets: RuleChanges[] = [];
    for (const rule of rules) {
      const snapshot = await takeSnapshot(rule, project);
      sets.push({ rule, snapshot, changes: diffSnapshots(base(rule), snapshot) });
    }
    return sets;
  };
  const count = (sets: readonly RuleChanges[]) => ({
    written: sets.reduce((n, s) => n + s.changes.upserts.length, 0),
    deleted: sets.reduce((n, s) => n + s.changes.deletions.length, 0),
  });
  const summary = (n: { written: number; deleted: number }) =>
    `${n.written} written${n.deleted ? `, ${n.deleted} deleted` : ''}`;

  const cycle = async (initial: boolean): Promise<void> => {
    const changedAt = firstEventAt || Date.now();
    firstEventAt = 0;
    const sets = await collect((rule) => snapshots.get(rule) ?? new Map());
    if (sets.every((s) => isEmpty(s.changes))) return;
    const n = count(sets);
    let action: Cycle['action'] = 'none';
    try {
      if (options.onChange === 'rebuild' && !initial) {
        action = await rebuild(sets);
      } else {
        const info = await docker.inspectContainer(serviceId);
        // `exec` (deletions) needs a running container; a stopped one is started by the change.
        if (!info?.running && n.deleted) await docker.startContainer(serviceId);
        await applyChanges(docker, serviceId, sets);
        if (options.onChange === 'restart') {
          await docker.restartContainer(serviceId, { timeoutSeconds: 2 });
          action = 'restarted';
        } else if (!info?.running) {
          await docker.startContainer(serviceId);
          action = 'started';
        }
      }
    } catch (err) {
      notice(`sync: ${summary(n)} not applied: ${errorText(err)} (the next change tries again)`);
      emit({ ...n, action: 'failed', changedAt, doneAt: Date.now() });
      return;
    }
    if (action === 'failed') {
      emit({ ...n, action, changedAt, doneAt: Date.now() });
      return;
    }
    for (const s of sets) snapshots.set(s.rule, s.snapshot);
    const what = { none: '', restarted: '; restarted', started: '; started', rebuilt: '; rebuilt' }[action];
    notice(`sync: ${initial ? 'first copy, ' : ''}${summary(n)}${what} (${Date.now() - changedAt} ms)`);
    emit({ ...n, action, changedAt, doneAt: Date.now() });
  };

  /** Builds; on success replaces the container, filled with every rule's files. */
  const rebuild = async (sets: readonly RuleChanges[]): Promise<Cycle['action']> => {
    const build = options.build;
    if (!build) throw new Error('--on-change rebuild needs --build');
    let built: Awaited<ReturnType<typeof buildDirectory>>;
    try {
      built = await buildDirectory(
        docker,
        build.dir,
        build.dockerfile ? { dockerfile: build.dockerfile } : {},
      );
    } catch (err) {
      notice(`sync: the build failed; the previous container keeps running.\n${errorText(err)}`);
      return 'failed';
    }
    const whole = sets.map((s) => ({ ...s, changes: diffSnapshots(new Map(), s.snapshot) }));
    serviceId = await replaceServiceContainer(docker, serviceId, {
      image: built.imageId,
      skip: rules.map((r) => r.container),
      fill: (id) => applyChanges(docker, id, whole),
      onWarning: (text) => notice(`warning: ${text}`),
    });
    return 'rebuilt';
  };

  const emit = (c: Cycle) => {
    for (const l of listeners) l(c);
  };

  const schedule = () => {
    if (closed) return;
    if (running) {
      pending = true;
      return;
    }
    running = cycle(false).finally(() => {
      running = undefined;
      if (pending && !closed) {
        pending = false;
        schedule();
      }
    });
  };

  await cycle(true);
  const watchers: FSWatcher[] = rules.map((rule) => {
    const onEvent = (_event: string, name: string | Buffer | null) => {
      // A file rule watches its directory: only its own name counts.
      if (
        !rule.directory &&
        name !== null &&
        String(name) !== rule.local.slice(dirname(rule.local).length + 1)
      )
        return;
      if (!firstEventAt) firstEventAt = Date.now();
      clearTimeout(timer);
      armed = true;
      timer = setTimeout(() => {
        armed = false;
        schedule();
      }, debounceMs);
    };
    const watcher = watch(
      rule.directory ? rule.local : dirname(rule.local),
      { recursive: rule.directory },
      onEvent,
    );
    watcher.on('error', (err) => notice(`warning: sync no longer watches ${rule.local}: ${errorText(err)}`));
    return watcher;
  });

  return {
    get serviceId() {
      return serviceId;
    },
    async idle() {
      while (running || pending || armed) {
        if (running) await running;
        else await new Promise((r) => setTimeout(r, debounceMs));
      }
    },
    onCycle(listener) {
      listeners.push(listener);
    },
    async close() {
      closed = true;
      clearTimeout(timer);
      for (const w of watchers) w.close();
      await running;
    },
  };
}
