/**
 * List + watch of one resource collection, kept in a local store, for the CLI and the
 * sidecar alike. A watch that ends normally (the server closes it every few minutes) is
 * resumed from the last resourceVersion; 410 Gone (as an HTTP status or an ERROR event)
 * forces a fresh list, whose differences from the store are reported as events; any
 * other failure is retried with backoff, until the caller's `fatal` or `maxFailures`
 * says to give up.
 */
import { errorText } from '../../util/errors.js';
import type { Logger } from '../../util/log.js';
import { Backoff, type BackoffOptions, sleep } from './backoff.js';
import { apiError, KubeApiError } from './errors.js';
import type { ApiTransport, Query } from './transport.js';

/** The parts of object metadata the informer itself needs. */
export interface KubeObject {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

interface ListPage {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: KubeObject[];
}

/** Every object of a collection, pages followed, and the list's resourceVersion. */
export async function listAll(
  api: ApiTransport,
  path: string,
  query: Query,
  options: { pageSize?: number; signal?: AbortSignal } = {},
): Promise<{ items: KubeObject[]; resourceVersion: string }> {
  const items: KubeObject[] = [];
  let resourceVersion = '';
  let continueToken: string | undefined;
  do {
    const page = (await api.request('GET', path, {
      query: { ...query, limit: options.pageSize ?? 500, continue: continueToken },
      signal: options.signal,
    })) as ListPage;
    items.push(...(page.items ?? []));
    resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return { items, resourceVersion };
}

export interface InformerOptions<T> {
  api: ApiTransport;
  /** Collection path, e.g. `/api/v1/namespaces/shop/pods`: one namespace, or a cluster-scoped kind. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** What the store keeps of each object (the sidecar trims them so the store stays small). */
  transform: (obj: KubeObject) => T;
  /**
   * What the store is keyed by: the object's name (default), or `namespace/name` for a
   * collection across namespaces, where names repeat.
   */
  keyBy?: 'name' | 'namespace/name';
  /** Each change to the store, relist differences included. */
  onEvent?(event: WatchEvent<T>): void;
  /** After every list and every applied watch event, once the store is up to date. */
  onChange?: () => void;
  /** After every list (the first and each relist), once the store is up to date. */
  onSynced?: () => void;
  backoff?: BackoffOptions;
  /** Server-side duration of one watch request. Default 300 s. */
  watchTimeoutSeconds?: number;
  /** A watch silent for this long is dropped and reopened. Default 30 s past the server-side duration. */
  idleTimeoutMs?: number;
  pageSize?: number;
  /** Consecutive failures after which run() gives up with the last one. Default: never. */
  maxFailures?: number;
  /** Failures run() gives up on at once (the CLI: 401, 403, 404, or any before the first list). */
  fatal?: (err: unknown) => boolean;
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

/** Wraps an error thrown by a callback, so it is not mistaken for an API failure. */
class CallbackError extends Error {}

export class Informer<T> {
  /** Current objects by name (or `namespace/name`, see `keyBy`). */
  readonly store = new Map<string, T>();
  readonly stats: InformerStats = { lists: 0, watches: 0, events: 0, errors: 0, synced: false };
  private readonly backoff: Backoff;
  /** resourceVersion of each stored object, to tell what a relist changed. */
  private readonly versions = new Map<string, string | undefined>();
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

  /**
   * Runs until `signal` aborts, then resolves. Rejects when a callback throws, on a
   * failure `fatal` accepts, or after `maxFailures` consecutive failures.
   */
  async run(signal: AbortSignal): Promise<void> {
    let resourceVersion: string | undefined;
    let consecutiveGone = 0;
    let failures = 0;
    try {
      while (!signal.aborted) {
        try {
          if (resourceVersion === undefined) {
            resourceVersion = await this.list(signal);
            failures = 0;
          }
          const started = Date.now();
          const before = this.stats.events;
          resourceVersion = await this.watch(resourceVersion, signal);
          consecutiveGone = 0;
          failures = 0;
          const productive = this.stats.events > before || Date.now() - started > 1000;
          if (productive) this.backoff.reset();
          else await sleep(this.backoff.next(), signal);
        } catch (err) {
          if (signal.aborted || err instanceof CallbackError) throw err;
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
          if (this.opts.fatal?.(err) || ++failures >= (this.opts.maxFailures ?? Number.POSITIVE_INFINITY))
            throw err;
          this.opts.log?.warn('watch failed, retrying', {
            path: this.opts.path,
            error: this.stats.lastError,
          });
          await sleep(this.backoff.next(), signal);
        }
      }
    } catch (err) {
      if (err instanceof CallbackError) throw err.cause;
      if (!signal.aborted) throw err;
    } finally {
      this.markAttempted();
    }
  }

  private keyOf(obj: KubeObject): string | undefined {
    const name = obj.metadata?.name;
    if (!name || this.opts.keyBy !== 'namespace/name') return name;
    return `${obj.metadata?.namespace ?? ''}/${name}`;
  }

  private query(): Query {
    return { labelSelector: this.opts.labelSelector, fieldSelector: this.opts.fieldSelector };
  }

  private callback<A extends unknown[]>(fn: ((...args: A) => void) | undefined, ...args: A): void {
    try {
      fn?.(...args);
    } catch (err) {
      throw new CallbackError('informer callback failed', { cause: err });
    }
  }

  private async list(signal: AbortSignal): Promise<string> {
    const { items, resourceVersion } = await listAll(this.opts.api, this.opts.path, this.query(), {
      pageSize: this.opts.pageSize,
      signal,
    });
    const seen = new Set<string>();
    for (const item of items) {
      const name = this.keyOf(item);
      if (!name) continue;
      seen.add(name);
      const known = this.versions.has(name);
      const changed = !known || this.versions.get(name) !== item.metadata?.resourceVersion;
      if (changed) this.put(known ? 'MODIFIED' : 'ADDED', name, item, false);
    }
    for (const name of [...this.store.keys()]) if (!seen.has(name)) this.remove(name, false);
    this.stats.lists++;
    this.stats.synced = true;
    this.markSynced();
    this.markAttempted();
    this.callback(this.opts.onChange);
    this.callback(this.opts.onSynced);
    return resourceVersion;
  }

  private put(type: 'ADDED' | 'MODIFIED', name: string, raw: KubeObject, notify: boolean): void {
    const object = this.opts.transform(raw);
    this.store.set(name, object);
    this.versions.set(name, raw.metadata?.resourceVersion);
    this.callback(this.opts.onEvent, { type, object });
    if (notify) this.callback(this.opts.onChange);
  }

  private remove(name: string, notify: boolean, raw?: KubeObject): void {
    const stored = this.store.get(name);
    this.store.delete(name);
    this.versions.delete(name);
    const object = raw ? this.opts.transform(raw) : stored;
    if (object !== undefined) this.callback(this.opts.onEvent, { type: 'DELETED', object });
    if (notify) this.callback(this.opts.onChange);
  }

  /** One watch request; returns the last resourceVersion seen when the server ends it. */
  private async watch(resourceVersion: string, signal: AbortSignal): Promise<string> {
    const timeout = this.opts.watchTimeoutSeconds ?? 300;
    const res = await this.opts.api.stream(this.opts.path, {
      query: {
        ...this.query(),
        watch: 1,
        resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: timeout,
      },
      signal,
      idleTimeoutMs: this.opts.idleTimeoutMs ?? (timeout + 30) * 1000,
    });
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
          if (line) rv = this.apply(JSON.parse(line) as RawWatchEvent, rv);
          nl = pending.indexOf('\n');
        }
      }
      if (pending.trim()) rv = this.apply(JSON.parse(pending) as RawWatchEvent, rv);
    } finally {
      res.destroy();
    }
    return rv;
  }

  private apply(event: RawWatchEvent, rv: string): string {
    if (event.type === 'ERROR') {
      const status = event.object as { code?: number; message?: string };
      if (status.code === 410) throw new Gone(status.message ?? 'resource version too old');
      const { endpoint } = this.opts.api;
      throw apiError(status.code ?? 500, JSON.stringify(status), {
        server: endpoint.server,
        context: endpoint.context,
        method: 'GET',
        path: this.opts.path,
        hints: endpoint.hints,
      });
    }
    const next = event.object.metadata?.resourceVersion ?? rv;
    if (event.type === 'BOOKMARK') return next;
    const name = this.keyOf(event.object);
    if (!name) return next;
    this.stats.events++;
    if (event.type === 'DELETED') this.remove(name, true, event.object);
    else this.put(this.store.has(name) ? 'MODIFIED' : 'ADDED', name, event.object, true);
    return next;
  }
}

interface RawWatchEvent {
  type: WatchEventType | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}
