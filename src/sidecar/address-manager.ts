/**
 * Makes cluster addresses reachable inside the sidecar's network namespace.
 * Every Service ClusterIP:port, and every pod IP:port behind a headless
 * Service, is redirected by NAT to the sidecar's own listener (`nat.ts`);
 * connections there travel through a tunnel to the same address and port in
 * the cluster. Nothing is bound on the cluster ports, so the app can listen on
 * any of them.
 *
 * Where NAT cannot be programmed (no nft/iptables, no kernel support, no
 * NET_ADMIN) the manager falls back: with NET_ADMIN each address goes on `lo`
 * with a listener per port (`direct`); without it, on 127.x aliases that the
 * DNS server rewrites A answers to (`fallback`, see `localAddressFor`). Both
 * fallbacks bind the cluster ports, so they skip every port the app declares
 * or listens on, and report those Services as unreachable.
 */
import { isIP, isIPv4 } from 'node:net';
import type { Logger } from '../util/log.js';
import {
  describeError,
  type Forwarder,
  type ForwarderContext,
  type Outbound,
  type RedirectListener,
  startRedirectListener,
  startTcpForwarder,
  startUdpForwarder,
  type TrafficStats,
} from './forwarders.js';
import type { ListeningPorts } from './listening-ports.js';
import { type AddressAdder, AddressPermissionError, AliasAllocator } from './loopback.js';
import { NatAliases, type NatOpener, type NatTable, type NatTarget } from './nat.js';
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

/**
 * `nat`: cluster addresses redirected to the sidecar's listener; `direct`: on `lo` with a listener
 * per port; `fallback`: 127.x aliases (no NET_ADMIN); `pending`: nothing set up yet.
 */
export type AddressMode = 'pending' | 'nat' | 'direct' | 'fallback';

export interface AddressStatus {
  ip: string;
  /** Where the listeners are bound: the ip itself, or its 127.x alias in fallback mode (none with NAT). */
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
  /** Start in fallback mode instead of trying NAT or `ip addr add`. */
  forceFallback?: boolean;
  /** Programs NAT in this namespace; without it addresses are bound (`direct` or `fallback`). */
  nat?: NatOpener;
  /** Port of the NAT listener (default: one the kernel picks). */
  natPort?: number;
  /** Ports the app declares: never bound, and the NAT listener stays off them. */
  appPorts?: readonly number[];
  /** Ports bound on the wildcard address right now (the app's), so bound addresses keep off them. */
  listeningPorts?: ListeningPorts;
  /** Delay to batch bursts of watch events into one reconcile. */
  settleMs?: number;
  /** How often listeners that failed to bind are retried. */
  retryMs?: number;
  /** Called for every error (the status endpoint keeps the last few). */
  onError?: (record: ErrorRecord) => void;
  log?: Logger;
}

interface NatState {
  table: NatTable;
  listener: RedirectListener;
  /** By `protocol/ip/port`. */
  targets: Map<string, NatTarget>;
  /** TCP targets by alias, for the listener. */
  byAlias: Map<string, NatTarget>;
  udp: Map<string, Forwarder>;
  /** The last update that failed (retried). */
  error?: string;
}

/** Addresses listed in the status with NAT: only those not fully redirected, at most this many. */
const STATUS_PENDING_MAX = 100;

const natKey = (protocol: PortProtocol, ip: string, port: number) => `${protocol}/${ip}/${port}`;

interface Active {
  ip: string;
  local?: string;
  /** The address is on `lo` (or needs nothing: fallback aliases). */
  added: boolean;
  owners: Set<string>;
  forwarders: Map<string, Forwarder>;
  wanted: Map<string, { protocol: PortProtocol; port: number }>;
  /** Wanted ports not bound because the app uses them, with why. */
  skipped: Map<string, string>;
  error?: string;
}

export class AddressManager {
  private mode: AddressMode;
  private desired = new Map<string, DesiredAddress>();
  private source: (() => Map<string, DesiredAddress>) | undefined;
  private nat: NatState | undefined;
  private readonly natAliases = new NatAliases();
  /** Ports the fallback skipped, as last reported. */
  private reportedSkips = '';
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
      if (this.nat?.error || [...this.active.values()].some((a) => a.error)) this.schedule(0);
    }, opts.retryMs ?? 5000);
    this.retryTimer.unref();
  }

  get addressMode(): AddressMode {
    return this.mode;
  }

  /** Sets what the cluster currently asks for; the change is applied shortly after. */
  setDesired(services: Iterable<ServiceInfo>, slices: Iterable<EndpointSliceInfo>, home?: string): void {
    // Bursts of watch events (a list of thousands) are computed once, when the reconcile runs.
    const [s, e] = [[...services], [...slices]];
    this.source = () => desiredAddresses(s, e, home);
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
        'clients that use literal ClusterIPs or pod IPs will not reach them, nor Service ports the app uses. ' +
        'Give the sidecar NET_ADMIN to fix this.',
      { reason },
    );
  }

  /** Sets up NAT on the first reconcile; on failure says which fallback is taken. */
  private async tryNat(): Promise<void> {
    const open = this.opts.nat;
    if (!open || this.mode !== 'pending') return;
    let listener: RedirectListener | undefined;
    try {
      listener = await startRedirectListener((local) => this.nat?.byAlias.get(local), this.ctx, {
        port: this.opts.natPort,
        avoid: new Set(this.opts.appPorts ?? []),
      });
      const table = await open(listener.port);
      this.nat = { table, listener, targets: new Map(), byAlias: new Map(), udp: new Map() };
      this.mode = 'nat';
      this.opts.log?.info('cluster addresses are redirected by NAT to the sidecar', {
        backend: table.backend,
        listener: `0.0.0.0:${listener.port}`,
      });
    } catch (err) {
      await listener?.close();
      this.recordError('nat', err);
      this.opts.log?.warn(
        "NAT is not available in the sidecar's namespace: binding cluster addresses instead " +
          '(ip addr add on lo, or 127.x aliases without NET_ADMIN); Service ports the app declares or listens on ' +
          'are not served',
        { reason: describeError(err) },
      );
    }
  }

  private async reconcile(): Promise<void> {
    if (this.source) {
      this.desired = this.source();
      this.source = undefined;
    }
    if (!this.closed) await this.tryNat();
    if (this.nat) await this.reconcileNat(this.nat);
    const bound = this.nat ? new Map([...this.desired].filter(([ip]) => !isIPv4(ip))) : this.desired;
    // Remove what is no longer wanted first, so a port moving between addresses can bind again.
    for (const [ip, act] of this.active) {
      const want = bound.get(ip);
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
    const reserved = this.reservedPorts();
    for (const [ip, want] of bound) {
      let act = this.active.get(ip);
      if (!act) {
        act = {
          ip,
          added: false,
          owners: want.owners,
          forwarders: new Map(),
          wanted: want.ports,
          skipped: new Map(),
        };
        this.active.set(ip, act);
      }
      act.owners = want.owners;
      act.wanted = want.ports;
      await this.bring(act, reserved);
    }
    this.reportSkips();
  }

  /**
   * Brings the NAT maps in line with what is desired: UDP sockets first (a datagram redirected
   * must find one), then one transaction of added and removed targets.
   */
  private async reconcileNat(nat: NatState): Promise<void> {
    const want = new Map<string, Omit<NatTarget, 'alias'>>();
    if (!this.closed) {
      for (const d of this.desired.values()) {
        if (!isIPv4(d.ip)) continue;
        for (const p of d.ports.values()) want.set(natKey(p.protocol, d.ip, p.port), { ...p, ip: d.ip });
      }
    }
    const removed = [...nat.targets].filter(([key]) => !want.has(key)).map(([, t]) => t);
    const added: NatTarget[] = [];
    const failedUdp: string[] = [];
    for (const [key, w] of want) {
      if (nat.targets.has(key)) continue;
      const target: NatTarget = { ...w, alias: this.natAliases.aliasFor(key) };
      if (target.protocol === 'UDP') {
        try {
          const spec = { localIp: target.alias, port: nat.listener.port, remoteIp: w.ip, remotePort: w.port };
          nat.udp.set(key, await startUdpForwarder(spec, this.ctx));
        } catch (err) {
          this.recordError(`listen udp ${target.alias}:${nat.listener.port} for ${w.ip}:${w.port}`, err);
          this.natAliases.release(key);
          failedUdp.push(key);
          continue;
        }
      }
      added.push(target);
    }
    if (added.length === 0 && removed.length === 0) return;
    try {
      await nat.table.update(added, removed);
      nat.error = undefined;
    } catch (err) {
      const text = describeError(err);
      if (text !== nat.error) this.recordError('nat update', err);
      nat.error = text;
      for (const t of added) {
        const key = natKey(t.protocol, t.ip, t.port);
        await nat.udp.get(key)?.close();
        nat.udp.delete(key);
        this.natAliases.release(key);
      }
      return;
    }
    for (const t of removed) {
      const key = natKey(t.protocol, t.ip, t.port);
      nat.targets.delete(key);
      if (nat.byAlias.get(t.alias) === t) nat.byAlias.delete(t.alias);
      await nat.udp.get(key)?.close();
      nat.udp.delete(key);
      this.natAliases.release(key);
    }
    for (const t of added) {
      nat.targets.set(natKey(t.protocol, t.ip, t.port), t);
      if (t.protocol === 'TCP') nat.byAlias.set(t.alias, t);
    }
    if (failedUdp.length) nat.error = `UDP not redirected: ${failedUdp.join(', ')}`;
  }

  /** Ports bound addresses must keep off: the app's declared ports and wildcard listeners now. */
  private reservedPorts(): Map<string, string> {
    const out = new Map<string, string>();
    for (const port of this.opts.appPorts ?? []) {
      out.set(`TCP/${port}`, `the app declares port ${port}`);
      out.set(`UDP/${port}`, `the app declares port ${port}`);
    }
    if (this.opts.listeningPorts) {
      const own = new Set<string>();
      for (const act of this.active.values()) for (const key of act.forwarders.keys()) own.add(key);
      for (const key of this.opts.listeningPorts()) {
        if (!own.has(key) && !out.has(key)) out.set(key, `the app listens on ${key}`);
      }
    }
    return out;
  }

  /** One warning naming the Services a bound fallback cannot serve, each time that list changes. */
  private reportSkips(): void {
    const skipped = [...this.active.values()]
      .filter((a) => a.skipped.size)
      .map((a) => `${[...a.owners].sort().join(',')} (${a.ip} ${[...a.skipped.keys()].join(' ')})`)
      .sort();
    const text = skipped.join('; ');
    if (text === this.reportedSkips) return;
    this.reportedSkips = text;
    if (!text) return;
    this.opts.log?.warn(
      `Services not reachable from the local container: their ports are the app's own, and without NAT they would have to be bound: ${text}`,
      {
        hint: 'give the sidecar NET_ADMIN and nft or iptables in its image, so cluster addresses are redirected instead',
      },
    );
  }

  /** Makes sure the address exists locally and every wanted port listens, except reserved ones. */
  private async bring(act: Active, reserved: Map<string, string>): Promise<void> {
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
    act.skipped.clear();
    for (const [key, { protocol, port }] of act.wanted) {
      if (act.forwarders.has(key)) continue;
      const why = reserved.get(key);
      if (why) {
        act.skipped.set(key, why);
        continue;
      }
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
      if (this.mode === 'pending') this.mode = 'direct';
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
    const out: AddressStatus[] = [...this.active.values()].map((a) => {
      const skipped = [...a.skipped].map(([key, why]) => `${key} not served: ${why}`);
      const error = [a.error, ...skipped].filter(Boolean).join('; ');
      return {
        ip: a.ip,
        local: a.local,
        owners: [...a.owners].sort(),
        ports: [...a.wanted.keys()].sort(),
        listening: [...a.forwarders.keys()].sort(),
        ...(error ? { error } : {}),
      };
    });
    const nat = this.nat;
    if (!nat) return out;
    // Redirected addresses are counted (natInfo), not listed: thousands would make the document
    // megabytes. Those not (yet) redirected are listed, a bounded number of them.
    for (const d of this.desired.values()) {
      if (!isIPv4(d.ip)) continue;
      const ports = [...d.ports.keys()].sort();
      const listening = ports.filter((key) => {
        const [protocol, port] = key.split('/') as [PortProtocol, string];
        return nat.targets.has(natKey(protocol, d.ip, Number(port)));
      });
      if (listening.length === ports.length) continue;
      const entry: AddressStatus = { ip: d.ip, owners: [...d.owners].sort(), ports, listening };
      if (nat.error) entry.error = nat.error;
      out.push(entry);
      if (out.length >= STATUS_PENDING_MAX) break;
    }
    return out;
  }

  /** How cluster addresses are made reachable, for the status endpoint. */
  natInfo(): { backend: string; listenPort: number; targets: number; addresses: number } | undefined {
    const nat = this.nat;
    return (
      nat && {
        backend: nat.table.backend,
        listenPort: nat.listener.port,
        targets: nat.targets.size,
        addresses: this.desired.size,
      }
    );
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
    const nat = this.nat;
    if (nat) {
      this.nat = undefined;
      await nat.table.clear().catch((err) => this.recordError('nat clear', err));
      await nat.listener.close();
      await Promise.all([...nat.udp.values()].map((f) => f.close()));
    }
  }
}
