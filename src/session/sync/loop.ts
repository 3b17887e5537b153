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
import { whileDrained } from './drain.js';
import { replaceServiceContainer } from './replace.js';
import type { OnChange, SyncRule } from './rules.js';
import { applyChanges, type RuleChanges } from './transfer.js';

export interface DevLoopOptions {
  docker: DockerClient;
  /** The service container as `up` started it. */
  serviceId: string;
  /** Its sidecar, which drains the app before each stop (restart, rebuild). */
  sidecar?: string;
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
  const loop = new SyncLoop(options);
  await loop.runCycle(true);
  loop.watch();
  return loop;
}

const summary = (n: { written: number; deleted: number }) =>
  `${n.written} written${n.deleted ? `, ${n.deleted} deleted` : ''}`;

function count(sets: readonly RuleChanges[]): { written: number; deleted: number } {
  return {
    written: sets.reduce((n, s) => n + s.changes.upserts.length, 0),
    deleted: sets.reduce((n, s) => n + s.changes.deletions.length, 0),
  };
}

class SyncLoop implements DevLoop {
  private current: string;
  /** What the container holds, per rule, as of the last cycle that succeeded. */
  private readonly snapshots = new Map<SyncRule, Snapshot>();
  private readonly listeners: ((cycle: Cycle) => void)[] = [];
  private readonly watchers: FSWatcher[] = [];
  private readonly debounceMs: number;
  private closed = false;
  private running: Promise<void> | undefined;
  private pending = false;
  private armed = false;
  private timer: NodeJS.Timeout | undefined;
  private firstEventAt = 0;
  private readonly warn = (text: string) => this.options.notice(`warning: ${text}`);

  constructor(private readonly options: DevLoopOptions) {
    this.current = options.serviceId;
    this.debounceMs = options.debounceMs ?? 50;
    for (const rule of options.rules) this.snapshots.set(rule, new Map());
  }

  get serviceId(): string {
    return this.current;
  }

  onCycle(listener: (cycle: Cycle) => void): void {
    this.listeners.push(listener);
  }

  async idle(): Promise<void> {
    while (this.running || this.pending || this.armed) {
      if (this.running) await this.running;
      else await new Promise((r) => setTimeout(r, this.debounceMs));
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    await this.running;
  }

  /** Watches every rule; events start a cycle after a quiet period. */
  watch(): void {
    for (const rule of this.options.rules) {
      const own = rule.local.slice(dirname(rule.local).length + 1);
      const onEvent = (_event: string, name: string | Buffer | null) => {
        // A file rule watches its directory: only its own name counts.
        if (!rule.directory && name !== null && String(name) !== own) return;
        if (!this.firstEventAt) this.firstEventAt = Date.now();
        clearTimeout(this.timer);
        this.armed = true;
        this.timer = setTimeout(() => {
          this.armed = false;
          this.schedule();
        }, this.debounceMs);
      };
      const watcher = watch(
        rule.directory ? rule.local : dirname(rule.local),
        { recursive: rule.directory },
        onEvent,
      );
      watcher.on('error', (err) =>
        this.options.notice(`warning: sync no longer watches ${rule.local}: ${errorText(err)}`),
      );
      this.watchers.push(watcher);
    }
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = this.runCycle(false).finally(() => {
      this.running = undefined;
      if (this.pending && !this.closed) {
        this.pending = false;
        this.schedule();
      }
    });
  }

  /** One cycle: what changed since the last good one, applied, then the `--on-change` action. */
  async runCycle(initial: boolean): Promise<void> {
    const changedAt = this.firstEventAt || Date.now();
    this.firstEventAt = 0;
    const sets = await this.collect();
    if (sets.every((s) => isEmpty(s.changes))) return;
    const n = count(sets);
    let action: Cycle['action'];
    try {
      action =
        this.options.onChange === 'rebuild' && !initial
          ? await this.rebuild(sets)
          : await this.apply(sets, n.deleted > 0, initial);
    } catch (err) {
      this.options.notice(`sync: ${summary(n)} not applied: ${errorText(err)} (the next change tries again)`);
      action = 'failed';
    }
    if (action !== 'failed') {
      for (const s of sets) this.snapshots.set(s.rule, s.snapshot);
      const what = { none: '', restarted: '; restarted', started: '; started', rebuilt: '; rebuilt' }[action];
      this.options.notice(
        `sync: ${initial ? 'first copy, ' : ''}${summary(n)}${what} (${Date.now() - changedAt} ms)`,
      );
    }
    const cycle: Cycle = { ...n, action, changedAt, doneAt: Date.now() };
    for (const l of this.listeners) l(cycle);
  }

  private async collect(): Promise<RuleChanges[]> {
    const sets: RuleChanges[] = [];
    for (const rule of this.options.rules) {
      const snapshot = await takeSnapshot(rule, this.options.project);
      sets.push({ rule, snapshot, changes: diffSnapshots(this.snapshots.get(rule) ?? new Map(), snapshot) });
    }
    return sets;
  }

  /**
   * Sends the changes into the container, then restarts it (`restart`, and after the first copy
   * with `rebuild`: the app started before its files came) or starts it if it had stopped.
   */
  private async apply(
    sets: readonly RuleChanges[],
    deletes: boolean,
    initial: boolean,
  ): Promise<Cycle['action']> {
    const { docker } = this.options;
    const info = await docker.inspectContainer(this.current);
    // `exec` (deletions) needs a running container; a stopped one is started by the change.
    if (!info?.running && deletes) await docker.startContainer(this.current);
    await applyChanges(docker, this.current, sets);
    if (this.options.onChange === 'restart' || (initial && this.options.onChange === 'rebuild')) {
      const current = this.current;
      await whileDrained(
        docker,
        this.options.sidecar,
        () => docker.restartContainer(current, { timeoutSeconds: 2 }),
        this.warn,
      );
      return 'restarted';
    }
    if (info?.running) return 'none';
    await docker.startContainer(this.current);
    return 'started';
  }

  /** Builds; on success replaces the container, filled with every rule's files. */
  private async rebuild(sets: readonly RuleChanges[]): Promise<Cycle['action']> {
    const { docker, build, notice } = this.options;
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
    this.current = await replaceServiceContainer(docker, this.current, {
      image: built.imageId,
      skip: this.options.rules.map((r) => r.container),
      fill: (id) => applyChanges(docker, id, whole),
      onWarning: this.warn,
      whileSwapping: (swap) => whileDrained(docker, this.options.sidecar, swap, this.warn),
    });
    return 'rebuilt';
  }
}
