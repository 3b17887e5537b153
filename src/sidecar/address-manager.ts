/**
 * Makes cluster addresses reachable inside the sidecar's network namespace.
 * Every Service ClusterIP, and every pod IP behind a headless Service, is put
 * on `lo` and gets a listener on each declared port; connections there travel
 * through a tunnel to the same address and port in the cluster. Without
 * NET_ADMIN the manager falls back to 127.x aliases, and the DNS server
 * rewrites A answers to those aliases (see `localAddressFor`).
 */
import { isIP } from 'node:net';
import type { Logger } from '../util/log.js';
import {
  describeError,
  type Forwarder,
  type ForwarderContext,
  type Outbound,
  startTcpForwarder,
  startUdpForwarder,
  type TrafficStats,
} from './forwarders.js';
import { type AddressAdder, AddressPermissionError, AliasAllocator } from './loopback.js';
import type { EndpointSliceInfo, PortProtocol, ServiceInfo } from './resources.js';

/** One cluster address and the ports that must answer on it. */
export interface DesiredAddress {
  ip: string;
  /** `TCP/80`, `UDP/53`, … */
  ports: Map<string, { protocol: PortProtocol; port: number }>;
  /** Services (and `service/pod-ip` for headless endpoints) that asked for it, for status. */
  owners: Set<string>;
}

/**
 * The addresses and ports the cluster view asks for: every ClusterIP with its
 * Service's ports; for headless Services every endpoint address with the
 * EndpointSlice ports (the target ports clients use) and the Service ports.
 */
export function desiredAddresses(
  services: Iterable<ServiceInfo>,
  slices: Iterable<EndpointSliceInfo>,
  home = '',
): Map<string, DesiredAddress> {
  const out = new Map<string, DesiredAddress>();
  const want = (ip: string, owner: string, protocol: PortProtocol, port: number) => {
    if (!isIP(ip)) return;
    let entry = out.get(ip);
    if (!entry) {
      entry = { ip, ports: new Map(), owners: new Set() };
      out.set(ip, entry);
    }
    entry.owners.add(owner);
    entry.ports.set(`${protocol}/${port}`, { protocol, port });
  };
  // Services of other namespaces are named as DNS names them: `svc.namespace`.
  const owner = (svc: ServiceInfo) =>
    !svc.namespace || svc.namespace === home ? svc.name : `${svc.name}.${svc.namespace}`;
  const headless = new Map<string, ServiceInfo>();
  for (const svc of services) {
    if (svc.headless) headless.set(`${svc.namespace}/${svc.name}`, svc);
    for (const ip of svc.clusterIPs) for (const p of svc.ports) want(ip, owner(svc), p.protocol, p.port);
  }
  for (const slice of slices) {
    const svc = headless.get(`${slice.namespace}/${slice.service}`);
    if (!svc) continue;
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    for (const ip of slice.addresses) {
      for (const p of slice.ports) want(ip, owner(svc), p.protocol, p.port);
      for (const p of svc.ports) want(ip, owner(svc), p.protocol, p.port);
    }
  }
  return out;
}

export type AddressMode = 'pending' | 'direct' | 'fallback';

export interface AddressStatus {
  ip: string;
  /** Where the listeners are bound: the ip itself, or its 127.x alias in fallback mode. */
  local?: string;
  owners: string[];
  ports: string[];
  listening: string[];
  error?: string;
}

export interface ErrorRecord {
  at: string;
  what: string;
  error: string;
}

export interface AddressManagerOptions {
  adder: AddressAdder;
  outbound: Outbound;
  stats: TrafficStats;
  /** Start in fallback mode instead of trying `ip addr add`. */
  forceFallback?: boolean;
  /** Delay to batch bursts of watch events into one reconcile. */
  settleMs?: number;
  /** How often listeners that failed to bind are retried. */
  retryMs?: number;
  /** Called for every error (the status endpoint keeps the last few). */
  onError?: (record: ErrorRecord) => void;
  log?: Logger;
}

interface Active {
  ip: string;
  local?: string;
  /** The address is on `lo` (or needs nothing: fallback aliases). */
  added: boolean;
  owners: Set<string>;
  forwarders: Map<string, Forwarder>;
  wanted: Map<string, { protocol: PortProtocol; port: number }>;
  error?: string;
}

export class AddressManager {
  private mode: AddressMode;
  private desired = new Map<string, DesiredAddress>();
  private readonly active = new Map<string, Active>();
  private readonly aliases = new AliasAllocator();
  private running: Promise<void> | undefined;
  private again = false;
  private settleTimer: NodeJS.Timeout | undefined;
  private readonly retryTimer: NodeJS.Timeout;
  private closed = false;
  private readonly ctx: ForwarderContext;

  constructor(private readonly opts: AddressManagerOptions) {
    this.mode = opts.forceFallback ? 'fallback' : 'pending';
    if (opts.forceFallback) this.announceFallback('forced by configuration');
    this.ctx = {
      outbound: opts.outbound,
      stats: opts.stats,
      onError: (what, err) => this.recordError(what, err),
      log: opts.log,
    };
    this.retryTimer = setInterval(() => {
      if ([...this.active.values()].some((a) => a.error)) this.schedule(0);
    }, opts.retryMs ?? 5000);
    this.retryTimer.unref();
  }

  get addressMode(): AddressMode {
    return this.mode;
  }

  /** Sets what the cluster currently asks for; the change is applied shortly after. */
  setDesired(services: Iterable<ServiceInfo>, slices: Iterable<EndpointSliceInfo>, home?: string): void {
    this.desired = desiredAddresses(services, slices, home);
    this.schedule(this.opts.settleMs ?? 50);
  }

  /**
   * The address a local client should use for a cluster address: undefined in direct mode
   * (the real address works), the 127.x alias in fallback mode. Used to rewrite DNS answers.
   */
  localAddressFor(ip: string): string | undefined {
    if (this.mode !== 'fallback') return undefined;
    return this.aliases.lookup(ip);
  }

  /** Resolves when everything asked for so far has been applied. */
  async settled(): Promise<void> {
    while (this.settleTimer || this.running) {
      if (this.settleTimer) {
        clearTimeout(this.settleTimer);
        this.settleTimer = undefined;
        this.kick();
      }
      await this.running;
    }
  }

  private schedule(delayMs: number): void {
    if (this.closed) return;
    if (this.settleTimer) return;
    this.settleTimer = setTimeout(() => {
      this.settleTimer = undefined;
      this.kick();
    }, delayMs);
  }

  private kick(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.reconcile();
      } while (this.again && !this.closed);
    })().finally(() => {
      this.running = undefined;
    });
  }

  private recordError(what: string, err: unknown): void {
    const record = { at: new Date().toISOString(), what, error: describeError(err) };
    this.opts.onError?.(record);
    this.opts.log?.debug('forwarding error', { ...record });
  }

  private announceFallback(reason: string): void {
    this.opts.log?.warn(
      'FALLBACK MODE: cluster addresses are served on 127.x aliases and DNS answers are rewritten to them; ' +
        'clients that use literal ClusterIPs or pod IPs will not reach them. Give the sidecar NET_ADMIN to fix this.',
      { reason },
    );
  }

  private async reconcile(): Promise<void> {
    // Remove what is no longer wanted first, so a port moving between addresses can bind again.
    for (const [ip, act] of this.active) {
      const want = this.desired.get(ip);
      if (!want || this.closed) {
        await this.teardown(act);
        this.active.delete(ip);
        continue;
      }
      for (const [key, fwd] of act.forwarders) {
        if (!want.ports.has(key)) {
          await fwd.close();
          act.forwarders.delete(key);
        }
      }
    }
    if (this.closed) return;
    for (const [ip, want] of this.desired) {
      let act = this.active.get(ip);
      if (!act) {
        act = { ip, added: false, owners: want.owners, forwarders: new Map(), wanted: want.ports };
        this.active.set(ip, act);
      }
      act.owners = want.owners;
      act.wanted = want.ports;
      await this.bring(act);
    }
  }

  /** Makes sure the address exists locally and every wanted port listens. */
  private async bring(act: Active): Promise<void> {
    const previous = act.error;
    act.error = undefined;
    // Retries of a persistent failure are recorded once, not every few seconds.
    const fail = (what: string, text: string, err: unknown) => {
      act.error = text;
      if (text !== previous) this.recordError(what, err);
    };
    if (!act.added) {
      try {
        await this.addAddress(act);
      } catch (err) {
        fail(`address ${act.ip}`, describeError(err), err);
        return;
      }
    }
    if (!act.local) return;
    for (const [key, { protocol, port }] of act.wanted) {
      if (act.forwarders.has(key)) continue;
      const spec = { localIp: act.local, remoteIp: act.ip, port };
      try {
        const fwd =
          protocol === 'TCP'
            ? await startTcpForwarder(spec, this.ctx)
            : await startUdpForwarder(spec, this.ctx);
        act.forwarders.set(key, fwd);
      } catch (err) {
        fail(`listen ${act.local}:${key}`, `${key}: ${describeError(err)}`, err);
      }
    }
  }

  private async addAddress(act: Active): Promise<void> {
    if (this.mode === 'fallback') {
      act.local = this.aliases.aliasFor(act.ip);
      if (!act.local) throw new Error('IPv6 addresses have no 127.x alias in fallback mode');
      act.added = true;
      return;
    }
    try {
      await this.opts.adder.add(act.ip);
      this.mode = 'direct';
      act.local = act.ip;
      act.added = true;
    } catch (err) {
      if (err instanceof AddressPermissionError && this.mode === 'pending') {
        this.mode = 'fallback';
        this.announceFallback(err.message);
        return this.addAddress(act);
      }
      throw err;
    }
  }

  private async teardown(act: Active): Promise<void> {
    await Promise.all([...act.forwarders.values()].map((f) => f.close()));
    act.forwarders.clear();
    if (!act.added) return;
    if (this.mode === 'fallback') {
      this.aliases.release(act.ip);
      return;
    }
    try {
      await this.opts.adder.remove(act.ip);
    } catch (err) {
      this.recordError(`remove address ${act.ip}`, err);
    }
  }

  status(): AddressStatus[] {
    return [...this.active.values()].map((a) => ({
      ip: a.ip,
      local: a.local,
      owners: [...a.owners].sort(),
      ports: [...a.wanted.keys()].sort(),
      listening: [...a.forwarders.keys()].sort(),
      error: a.error,
    }));
  }

  /** Closes every listener and removes every address this manager added. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.retryTimer);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.settleTimer = undefined;
    await this.running;
    for (const [ip, act] of this.active) {
      await this.teardown(act);
      this.active.delete(ip);
    }
  }
}
