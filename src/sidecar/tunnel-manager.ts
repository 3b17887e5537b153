/**
 * Keeps one tunnel per ready agent pod. Each pod gets a supervisor that dials,
 * waits for the tunnel to die, and dials again with exponential backoff and
 * jitter. Pods that stop being ready are drained (no new outbound streams) and
 * closed when they leave the store. Outbound streams and DNS queries go to the
 * healthy tunnel with the fewest open streams.
 */
import type { Duplex } from 'node:stream';
import { Backoff, type BackoffOptions, sleep } from '../kube/api/index.js';
import type { Share } from '../tunnel/share.js';
import { DevboxError, errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { AgentPod } from './resources.js';
import type { InboundStream, TunnelDialer, TunnelLink, UdpFlowLink } from './tunnel-link.js';

/**
 * How a lost tunnel is dialed again. The ceiling is low on purpose: while the API server is away
 * (restart, upgrade, network cut) every dial fails, and a ceiling of many seconds would leave the
 * session dark that long after the API returns. A dial is one port-forward request: one every
 * 1–2 s per agent pod costs the API server nothing.
 */
export const TUNNEL_RECONNECT_BACKOFF: BackoffOptions = { initialMs: 250, maxMs: 2_000 };

export type TunnelState = 'connecting' | 'up' | 'backoff' | 'draining' | 'closed';

export interface TunnelStatus {
  pod: string;
  podIP: string;
  state: TunnelState;
  /** When the current state began (ISO time). */
  since: string;
  reconnects: number;
  streamsOpen: number;
  lastError?: string;
  lastErrorAt?: string;
}

export interface TunnelManagerOptions {
  dialer: TunnelDialer;
  agentPort: number;
  onInbound: (inbound: InboundStream) => void;
  backoff?: BackoffOptions;
  /** A tunnel that stayed up this long resets its backoff. */
  stableAfterMs?: number;
  log?: Logger;
}

/** Raised when no tunnel can carry a request right now. */
export class NoTunnelError extends DevboxError {
  constructor() {
    super('TUNNEL', 'no tunnel to an agent pod is up', {
      hint: 'check that the workload has a ready pod with the devbox agent (devbox status)',
    });
    this.name = 'NoTunnelError';
  }
}

interface Entry {
  pod: AgentPod;
  status: TunnelStatus;
  link?: TunnelLink;
  controller: AbortController;
  draining: boolean;
  done: Promise<void>;
}

export class TunnelManager {
  private readonly entries = new Map<string, Entry>();
  /** Share links every tunnel hands its agent, also tunnels opened later. */
  private readonly shares = new Map<string, Share>();
  private readonly waiters = new Set<() => void>();
  private stopped = false;

  constructor(private readonly opts: TunnelManagerOptions) {}

  /** Applies the current set of agent pods (from the pod informer). */
  update(pods: Iterable<AgentPod>): void {
    if (this.stopped) return;
    const present = new Map<string, AgentPod>();
    for (const pod of pods) present.set(pod.name, pod);
    for (const [name, entry] of this.entries) {
      const pod = present.get(name);
      if (!pod || pod.uid !== entry.pod.uid || (pod.ip !== entry.pod.ip && pod.ip !== '')) {
        this.remove(name, entry);
      } else if (!pod.ready && !entry.draining) {
        entry.draining = true;
        this.opts.log?.info('agent pod not ready, draining its tunnel', { pod: name });
        if (entry.status.state === 'up') this.setState(entry, 'draining');
      } else if (pod.ready && entry.draining) {
        entry.draining = false;
        if (entry.status.state === 'draining') this.setState(entry, 'up');
      }
    }
    for (const [name, pod] of present) {
      if (!pod.ready || this.entries.has(name)) continue;
      this.start(pod);
    }
  }

  private remove(name: string, entry: Entry): void {
    this.entries.delete(name);
    entry.controller.abort();
    entry.link?.close();
    this.setState(entry, 'closed');
    this.opts.log?.info('agent pod gone, tunnel closed', { pod: name });
  }

  private start(pod: AgentPod): void {
    const now = new Date().toISOString();
    const entry: Entry = {
      pod,
      status: {
        pod: pod.name,
        podIP: pod.ip,
        state: 'connecting',
        since: now,
        reconnects: 0,
        streamsOpen: 0,
      },
      controller: new AbortController(),
      draining: false,
      done: Promise.resolve(),
    };
    this.entries.set(pod.name, entry);
    entry.done = this.supervise(entry);
  }

  private setState(entry: Entry, state: TunnelState): void {
    if (entry.status.state === state) return;
    entry.status.state = state;
    entry.status.since = new Date().toISOString();
    if (state === 'up') {
      for (const wake of this.waiters) wake();
      this.waiters.clear();
    }
  }

  private async supervise(entry: Entry): Promise<void> {
    const signal = entry.controller.signal;
    const backoff = new Backoff(this.opts.backoff ?? TUNNEL_RECONNECT_BACKOFF);
    const stableAfter = this.opts.stableAfterMs ?? 30_000;
    const log = this.opts.log;
    while (!signal.aborted) {
      this.setState(entry, 'connecting');
      let upAt = 0;
      try {
        const link = await this.opts.dialer(
          { pod: entry.pod.name, podIP: entry.pod.ip, port: this.opts.agentPort },
          this.opts.onInbound,
          signal,
        );
        if (signal.aborted) {
          link.close();
          break;
        }
        entry.link = link;
        this.sendShares(link);
        upAt = Date.now();
        this.setState(entry, entry.draining ? 'draining' : 'up');
        log?.info('tunnel up', { pod: entry.pod.name, reconnects: entry.status.reconnects });
        await untilAborted(link.closed, signal);
        this.captureStats(entry);
        entry.status.streamsOpen = 0;
        entry.link = undefined;
        link.close();
        if (signal.aborted) break;
        log?.warn('tunnel lost', { pod: entry.pod.name, upForMs: Date.now() - upAt });
      } catch (err) {
        if (signal.aborted) break;
        entry.status.lastError = errorText(err);
        entry.status.lastErrorAt = new Date().toISOString();
        log?.warn('tunnel failed', { pod: entry.pod.name, error: entry.status.lastError });
      }
      if (upAt && Date.now() - upAt >= stableAfter) backoff.reset();
      entry.status.reconnects++;
      this.setState(entry, 'backoff');
      await sleep(backoff.next(), signal);
    }
    this.setState(entry, 'closed');
  }

  /**
   * Has every agent pod apply `share` while its tunnel lives. False when no tunnel is up or an
   * agent cannot apply shares (an agent older than share links).
   */
  addShare(share: Share): boolean {
    this.shares.set(share.key, share);
    const links = this.upLinks();
    return links.length > 0 && links.map((link) => link.share?.(share) ?? false).every(Boolean);
  }

  /** Revokes shares handed out (all of them without `key`); returns how many there were. */
  revokeShares(key?: string): number {
    const keys = key === undefined ? [...this.shares.keys()] : this.shares.has(key) ? [key] : [];
    for (const k of keys) this.shares.delete(k);
    for (const link of this.upLinks()) for (const k of keys) link.revokeShare?.(k);
    return keys.length;
  }

  private sendShares(link: TunnelLink): void {
    const now = Date.now();
    for (const [key, share] of this.shares) {
      if (share.expiresAt <= now) this.shares.delete(key);
      else link.share?.(share);
    }
  }

  private upLinks(): TunnelLink[] {
    return [...this.entries.values()].flatMap((e) => (e.link && e.status.state !== 'closed' ? [e.link] : []));
  }

  private captureStats(entry: Entry): void {
    if (!entry.link) return;
    entry.status.streamsOpen = entry.link.stats().streamsOpen;
  }

  /** Tunnels that can take new outbound streams, fewest open streams first. */
  private healthy(): TunnelLink[] {
    const out: { link: TunnelLink; load: number }[] = [];
    for (const entry of this.entries.values()) {
      if (entry.status.state === 'up' && entry.link)
        out.push({ link: entry.link, load: entry.link.stats().streamsOpen });
    }
    return out.sort((a, b) => a.load - b.load).map((x) => x.link);
  }

  /** True when at least one tunnel is up. */
  get ready(): boolean {
    return this.healthy().length > 0;
  }

  /** Waits up to `timeoutMs` for a tunnel to come up. */
  async waitReady(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.ready) return true;
    if (timeoutMs <= 0) return false;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
    return this.ready;
  }

  private async pick(waitMs: number, signal?: AbortSignal): Promise<TunnelLink> {
    let link = this.healthy()[0];
    if (!link && waitMs > 0 && (await this.waitReady(waitMs, signal))) link = this.healthy()[0];
    if (!link) throw new NoTunnelError();
    return link;
  }

  /** A TCP stream to host:port dialed by an agent; waits briefly for a tunnel when none is up. */
  async openTcp(host: string, port: number, signal?: AbortSignal, waitMs = 3000): Promise<Duplex> {
    return (await this.pick(waitMs, signal)).openTcp(host, port, signal);
  }

  async openUdp(host: string, port: number, signal?: AbortSignal, waitMs = 3000): Promise<UdpFlowLink> {
    return (await this.pick(waitMs, signal)).openUdp(host, port, signal);
  }

  /** Relays one DNS query; fails at once (no waiting) when no tunnel is up. */
  async dnsQuery(query: Buffer, signal?: AbortSignal): Promise<Buffer> {
    return (await this.pick(0, signal)).dnsQuery(query, signal);
  }

  status(): TunnelStatus[] {
    return [...this.entries.values()].map((entry) => {
      this.captureStats(entry);
      return { ...entry.status };
    });
  }

  /** Each up tunnel's agent counters (by pod), or the reason they could not be read. */
  async agentStats(timeoutMs: number): Promise<Record<string, unknown>> {
    const out: Record<string, unknown> = {};
    await Promise.all(
      [...this.entries.values()].map(async (entry) => {
        const link = entry.link;
        if (!link?.agentStats) return;
        out[entry.pod.name] = await link.agentStats(timeoutMs).catch((err) => ({ error: errorText(err) }));
      }),
    );
    return out;
  }

  /** Closes every tunnel and stops reconnecting. */
  async close(): Promise<void> {
    this.stopped = true;
    const done: Promise<void>[] = [];
    for (const [name, entry] of this.entries) {
      this.remove(name, entry);
      done.push(entry.done);
    }
    for (const wake of this.waiters) wake();
    await Promise.all(done);
  }
}

/** Resolves when `promise` settles or `signal` aborts, whichever comes first, leaving no listener behind. */
function untilAborted(promise: Promise<unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      signal.removeEventListener('abort', done);
      resolve();
    };
    signal.addEventListener('abort', done, { once: true });
    promise.then(done, done);
  });
}
