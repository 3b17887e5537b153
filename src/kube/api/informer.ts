/**
 * List + watch of one resource collection, kept in a local store of trimmed
 * objects. A watch that ends normally (the server closes it every few minutes)
 * is resumed from the last resourceVersion; 410 Gone (as an HTTP status or an
 * ERROR event) forces a fresh list; any other failure is retried with backoff.
 */
import { errorText } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { Backoff, type BackoffOptions, sleep } from './backoff.js';
import { type KubeApi, KubeApiError } from './transport.js';

/** The parts of object metadata the informer itself needs. */
export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface ListResponse {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubeObject[];
}

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject & { code?: number; message?: string };
}

export interface InformerOptions<T> {
  api: KubeApi;
  /** Collection path, e.g. `/api/v1/namespaces/shop/pods`. */
  path: string;
  labelSelector?: string;
  /** Keeps only what the sidecar uses, so the store stays small. */
  transform: (obj: KubeObject) => T;
  /** Called after every list and every applied event. */
  onChange: () => void;
  backoff?: BackoffOptions;
  /** Server-side watch timeout; the client gives up on a silent stream 30 s later. */
  watchTimeoutSeconds?: number;
  pageSize?: number;
  log?: Logger;
}

export interface InformerStats {
  lists: number;
  watches: number;
  events: number;
  errors: number;
  lastError?: string;
  lastErrorAt?: string;
  synced: boolean;
}

class Gone extends Error {}

export class Informer<T> {
  /** Current objects by name. */
  readonly store = new Map<string, T>();
  readonly stats: InformerStats = { lists: 0, watches: 0, events: 0, errors: 0, synced: false };
  private readonly backoff: Backoff;
  private markSynced!: () => void;
  /** Resolves after the first successful list. */
  readonly synced = new Promise<void>((resolve) => {
    this.markSynced = resolve;
  });
  private markAttempted!: () => void;
  /** Resolves once the first list has succeeded or failed (it is retried either way), or on stop. */
  readonly attempted = new Promise<void>((resolve) => {
    this.markAttempted = resolve;
  });

  constructor(private readonly opts: InformerOptions<T>) {
    this.backoff = new Backoff(opts.backoff ?? { initialMs: 500, maxMs: 30_000 });
  }

  /** Runs until `signal` aborts; never throws. */
  async run(signal: AbortSignal): Promise<void> {
    let resourceVersion: string | undefined;
    let consecutiveGone = 0;
    while (!signal.aborted) {
      try {
        if (resourceVersion === undefined) resourceVersion = await this.list(signal);
        const started = Date.now();
        const before = this.stats.events;
        resourceVersion = await this.watch(resourceVersion, signal);
        consecutiveGone = 0;
        const productive = this.stats.events > before || Date.now() - started > 1000;
        if (productive) this.backoff.reset();
        else await sleep(this.backoff.next(), signal);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof Gone || (err instanceof KubeApiError && err.status === 410)) {
          this.opts.log?.debug('watch expired, listing again', { path: this.opts.path });
          resourceVersion = undefined;
          if (++consecutiveGone > 1) await sleep(this.backoff.next(), signal);
          continue;
        }
        this.stats.errors++;
        this.markAttempted();
        this.stats.lastError = errorText(err);
        this.stats.lastErrorAt = new Date().toISOString();
        this.opts.log?.warn('watch failed, retrying', { path: this.opts.path, error: this.stats.lastError });
        await sleep(this.backoff.next(), signal);
      }
    }
    this.markAttempted();
  }

  private query(extra: Record<string, string>): string {
    const params = new URLSearchParams();
    if (this.opts.labelSelector) params.set('labelSelector', this.opts.labelSelector);
    for (const [k, v] of Object.entries(extra)) params.set(k, v);
    return `${this.opts.path}?${params.toString()}`;
  }

  private async list(signal: AbortSignal): Promise<string> {
    const fresh = new Map<string, T>();
    let cont: string | undefined;
    let resourceVersion = '';
    do {
      const page: Record<string, string> = { limit: String(this.opts.pageSize ?? 500) };
      if (cont) page.continue = cont;
      const body = (await this.opts.api.getJson(this.query(page), signal)) as ListResponse;
      for (const item of body.items ?? []) {
        const name = item.metadata?.name;
        if (name) fresh.set(name, this.opts.transform(item));
      }
      cont = body.metadata?.continue || undefined;
      resourceVersion = body.metadata?.resourceVersion ?? '';
    } while (cont);
    this.store.clear();
    for (const [k, v] of fresh) this.store.set(k, v);
    this.stats.lists++;
    this.stats.synced = true;
    this.markSynced();
    this.markAttempted();
    this.opts.onChange();
    return resourceVersion;
  }

  /** One watch request; returns the last resourceVersion seen when the server ends it. */
  private async watch(resourceVersion: string, signal: AbortSignal): Promise<string> {
    const timeout = this.opts.watchTimeoutSeconds ?? 300;
    const path = this.query({
      watch: '1',
      resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(timeout),
    });
    const res = await this.opts.api.getStream(path, signal, (timeout + 30) * 1000);
    this.stats.watches++;
    let rv = resourceVersion;
    let pending = '';
    res.setEncoding('utf8');
    try {
      for await (const chunk of res as AsyncIterable<string>) {
        pending += chunk;
        let nl = pending.indexOf('\n');
        while (nl >= 0) {
          const line = pending.slice(0, nl).trim();
          pending = pending.slice(nl + 1);
          if (line) rv = this.apply(JSON.parse(line) as WatchEvent, rv);
          nl = pending.indexOf('\n');
        }
      }
      if (pending.trim()) rv = this.apply(JSON.parse(pending) as WatchEvent, rv);
    } finally {
      res.destroy();
    }
    return rv;
  }

  private apply(event: WatchEvent, rv: string): string {
    if (event.type === 'ERROR') {
      if (event.object.code === 410) throw new Gone(event.object.message ?? 'resource version too old');
      throw new KubeApiError(
        event.object.code ?? 0,
        `watch ${this.opts.path}: ${event.object.message ?? 'error'}`,
      );
    }
    const next = event.object.metadata?.resourceVersion ?? rv;
    if (event.type === 'BOOKMARK') return next;
    const name = event.object.metadata?.name;
    if (!name) return next;
    if (event.type === 'DELETED') this.store.delete(name);
    else this.store.set(name, this.opts.transform(event.object));
    this.stats.events++;
    this.opts.onChange();
    return next;
  }
}
