/**
 * The Services and EndpointSlices the sidecar listens for: those of its own namespace from the
 * start, and those of any other namespace as soon as the local container resolves a name in it
 * (`db.billing`, `db-0.db.billing.svc.cluster.local`), so that what resolves also connects, as in
 * the pod. Another namespace needs read access the sidecar's namespaced Role does not give: the
 * optional ClusterRole of templates/rbac/devbox-sidecar-discovery.yaml. Without it the namespace
 * is reported once and DNS answers are not held up.
 *
 * Bound cluster-wide, that ClusterRole lets one watch pair across all namespaces serve every
 * other namespace (only those resolved into are listened on): a pair per namespace would hold two
 * API connections each, 128 for 64 namespaces, and their buffers. Bound namespace by namespace, it
 * leaves a pair per namespace, up to NAMESPACES_MAX of them.
 */
import { type ApiTransport, Informer, KubeApiError } from '../kube/api/index.js';
import type { Logger } from '../util/log.js';
import { DnsFormatError, firstQuestion, rcodeOf, readHeader } from './dns-wire.js';
import { type EndpointSliceInfo, paths, type ServiceInfo, toEndpointSlice, toService } from './resources.js';

/** Other namespaces watched at most one by one; names beyond it resolve but are not listened on. */
const NAMESPACES_MAX = 64;
const RFC1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The namespace a positive DNS answer is about, when it names a Service or its pod in a namespace
 * other than `home`: the label before `.svc.` of the question.
 */
export function answeredNamespace(reply: Buffer, home: string): string | undefined {
  try {
    if (rcodeOf(reply) !== 0 || readHeader(reply).ancount === 0) return undefined;
    const labels = (firstQuestion(reply)?.name ?? '').toLowerCase().replace(/\.$/, '').split('.');
    const svc = labels.lastIndexOf('svc');
    if (svc < 2) return undefined;
    const namespace = labels[svc - 1]!;
    return namespace !== home && RFC1123_LABEL.test(namespace) ? namespace : undefined;
  } catch (err) {
    if (err instanceof DnsFormatError) return undefined;
    throw err;
  }
}

interface NamespaceWatch {
  services: Informer<ServiceInfo>;
  slices: Informer<EndpointSliceInfo>;
  /** Resolves once both have listed, or either has failed once. */
  settled: Promise<void>;
}

export interface ServiceWatchesOptions {
  api: ApiTransport;
  home: string;
  /** Called after every change in any namespace. */
  onChange: () => void;
  signal: AbortSignal;
  log?: Logger;
}

type NamespaceState = 'listening' | 'unreadable' | 'pending';

export class ServiceWatches {
  private readonly watches = new Map<string, NamespaceWatch>();
  private readonly running: Promise<void>[] = [];
  /** Other namespaces resolved into, served by the watch across namespaces. */
  private readonly wanted = new Set<string>();
  /** The watch across namespaces, or none (not allowed); decided at start, before any name needs it. */
  private readonly acrossDecided: Promise<NamespaceWatch | undefined>;
  private across: NamespaceWatch | undefined;

  constructor(private readonly opts: ServiceWatchesOptions) {
    this.start(opts.home);
    this.acrossDecided = this.watchAcross();
  }

  /** Services of every namespace listened on. */
  *services(): Iterable<ServiceInfo> {
    for (const w of this.watches.values()) yield* w.services.store.values();
    if (this.across)
      for (const s of this.across.services.store.values()) if (this.wanted.has(s.namespace)) yield s;
  }

  *slices(): Iterable<EndpointSliceInfo> {
    for (const w of this.watches.values()) yield* w.slices.store.values();
    if (this.across)
      for (const s of this.across.slices.store.values()) if (this.wanted.has(s.namespace)) yield s;
  }

  /** The informers of the sidecar's own namespace (for status). */
  get home(): { services: Informer<ServiceInfo>; slices: Informer<EndpointSliceInfo> } {
    return this.watches.get(this.opts.home)!;
  }

  /** Namespaces watched besides the own one, and whether their Services are known. */
  others(): Record<string, NamespaceState> {
    const out: Record<string, NamespaceState> = {};
    for (const ns of this.wanted) out[ns] = 'listening';
    for (const [ns, w] of this.watches) {
      if (ns === this.opts.home) continue;
      out[ns] =
        w.services.stats.synced && w.slices.stats.synced
          ? 'listening'
          : w.services.stats.errors + w.slices.stats.errors > 0
            ? 'unreadable'
            : 'pending';
    }
    return out;
  }

  /** Every informer, for error reporting. */
  informers(): Informer<unknown>[] {
    const all = [...this.watches.values(), ...(this.across ? [this.across] : [])];
    return all.flatMap((w) => [w.services, w.slices] as Informer<unknown>[]);
  }

  /**
   * Starts listening on `namespace` if it is not yet; resolves once its Services are known or
   * cannot be read.
   */
  async watch(namespace: string): Promise<void> {
    if (namespace === this.opts.home) return this.watches.get(namespace)!.settled;
    if (await this.acrossDecided) {
      if (this.wanted.has(namespace)) return;
      this.wanted.add(namespace);
      this.opts.onChange();
      return;
    }
    const w = this.watches.get(namespace);
    if (w) return w.settled;
    if (this.watches.size > NAMESPACES_MAX) return;
    return this.start(namespace).settled;
  }

  async close(): Promise<void> {
    await this.acrossDecided;
    await Promise.all(this.running);
  }

  /**
   * The watch pair across all namespaces, once both have listed; undefined (and stopped) when
   * the sidecar may not list across namespaces.
   */
  private async watchAcross(): Promise<NamespaceWatch | undefined> {
    const stop = new AbortController();
    const signal = AbortSignal.any([this.opts.signal, stop.signal]);
    const forbidden = (err: unknown) =>
      err instanceof KubeApiError && (err.status === 401 || err.status === 403);
    // Events of namespaces nobody resolved into change nothing: only a wanted one is passed on.
    let changed = false;
    const mark = (event: { object: { namespace: string } }) => {
      if (this.wanted.has(event.object.namespace)) changed = true;
    };
    const onChange = () => {
      if (!changed) return;
      changed = false;
      this.opts.onChange();
    };
    const services = new Informer<ServiceInfo>({
      api: this.opts.api,
      path: paths.allServices(),
      keyBy: 'namespace/name',
      transform: toService,
      onEvent: mark,
      onChange,
      fatal: forbidden,
      log: this.opts.log,
    });
    const slices = new Informer<EndpointSliceInfo>({
      api: this.opts.api,
      path: paths.allEndpointSlices(),
      keyBy: 'namespace/name',
      transform: toEndpointSlice,
      onEvent: mark,
      onChange,
      fatal: forbidden,
      log: this.opts.log,
    });
    const runs = [services, slices].map((i) => i.run(signal).catch(() => stop.abort()));
    await Promise.all([services.attempted, slices.attempted]);
    if (!services.stats.synced || !slices.stats.synced || signal.aborted) {
      stop.abort();
      await Promise.all(runs);
      this.opts.log?.debug(
        'Services are watched namespace by namespace: the sidecar may not list them across namespaces',
      );
      return undefined;
    }
    this.running.push(...runs);
    this.across = { services, slices, settled: Promise.resolve() };
    return this.across;
  }

  private start(namespace: string): NamespaceWatch {
    const { api, log, onChange, signal } = this.opts;
    const services = new Informer<ServiceInfo>({
      api,
      path: paths.services(namespace),
      transform: (obj) => ({ ...toService(obj), namespace }),
      onChange,
      log,
    });
    const slices = new Informer<EndpointSliceInfo>({
      api,
      path: paths.endpointSlices(namespace),
      transform: (obj) => ({ ...toEndpointSlice(obj), namespace }),
      onChange,
      log,
    });
    const watch: NamespaceWatch = {
      services,
      slices,
      settled: Promise.all([services.attempted, slices.attempted]).then(() => {
        // Runs once per namespace: the warning is said once.
        if (services.stats.synced && slices.stats.synced) return;
        log?.warn(
          `Services of namespace ${namespace} resolve but are not listened on: the sidecar may not read them`,
          {
            namespace,
            error: services.stats.lastError ?? slices.stats.lastError,
            hint: "an administrator can bind the ClusterRole of templates/rbac/devbox-sidecar-discovery.yaml to this namespace's devbox-sidecar account",
          },
        );
      }),
    };
    this.watches.set(namespace, watch);
    this.running.push(services.run(signal), slices.run(signal));
    return watch;
  }
}
