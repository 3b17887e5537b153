/**
 * The local short-circuit: when another workload of the same `devbox up` runs on this Docker
 * engine, a connection to its Service (ClusterIP:port) goes straight to that local container
 * instead of through the cluster, where the other workload's agent would only send it back here.
 *
 * The CLI sets the table once every session of the command is up (`PUT /local-routes` on the
 * status endpoint). A routed destination that does not answer (its container stopped, or is
 * being replaced) falls back to the tunnel, so a call never fails for want of the shortcut; all
 * other destinations, and UDP, always take the tunnel.
 */
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { DevboxError, errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { Outbound } from './forwarders.js';

export interface LocalRoute {
  /** `namespace/name` of the Service. */
  service: string;
  clusterIp: string;
  /** The Service's port (TCP). */
  port: number;
  /** The other session's local container, as this one reaches it on the Docker network. */
  to: { host: string; port: number };
  /** Its name, for status. */
  container: string;
}

export interface LocalRouteStatus extends LocalRoute {
  /** Connections that went straight to the local container. */
  connections: number;
  /** Connections that went through the cluster because the local container did not answer. */
  fellBack: number;
  /** Connections opened through the cluster before the route was set, closed at a quiet moment. */
  handedOver: number;
}

/** How long a direct dial may take before the tunnel takes over (a Docker network answers in ms). */
const DIRECT_DIAL_TIMEOUT_MS = 1_000;
/** How long a route that did not answer is skipped. */
const REST_AFTER_FAILURE_MS = 2_000;
/** Quiet after the server's answer before a connection is handed over (as the agent does, intercept.ts). */
const HAND_OVER_QUIET_MS = 250;
/** A handed-over connection whose peers do not close after our FIN is destroyed after this. */
const HAND_OVER_CLOSE_MS = 5_000;

/** A connection that went through the cluster, watched for the moment it may move to a new route. */
interface Tunnelled {
  local: net.Socket;
  remote: Duplex;
  serverSpokeLast: boolean;
  lastBytesAt: number;
  handingOver?: LocalRouteStatus;
  timer?: NodeJS.Timeout;
}

/**
 * The table of local routes and the outbound that follows it: TCP to a routed destination dials
 * the local container first. A connection that already went through the cluster when its route
 * was set is closed at its first quiet moment after the server answered — what a server does at
 * its keep-alive timeout, which clients handle by reconnecting — so that pooled clients move too.
 */
export class LocalRoutes {
  private routes = new Map<string, LocalRouteStatus>();
  private readonly tunnelled = new Map<string, Set<Tunnelled>>();
  private readonly direct = new WeakSet<Duplex>();
  /** A container that did not answer is left alone for a moment: callers should not each wait for it. */
  private readonly resting = new Map<string, number>();
  readonly outbound: Outbound;

  constructor(
    tunnel: Outbound,
    private readonly log?: Logger,
  ) {
    this.outbound = {
      openTcp: (host, port, signal) => this.openTcp(tunnel, host, port, signal),
      openUdp: (host, port, signal) => tunnel.openUdp(host, port, signal),
      joined: (host, port, local, remote) => this.joined(`${host}:${port}`, local, remote),
    };
  }

  /** Replaces the table (counters of routes kept are kept). */
  set(routes: readonly LocalRoute[]): void {
    const next = new Map<string, LocalRouteStatus>();
    for (const route of routes) {
      const key = `${route.clusterIp}:${route.port}`;
      const old = this.routes.get(key);
      next.set(key, {
        ...route,
        connections: old?.connections ?? 0,
        fellBack: old?.fellBack ?? 0,
        handedOver: old?.handedOver ?? 0,
      });
    }
    this.routes = next;
    for (const [key, route] of next) {
      for (const conn of this.tunnelled.get(key) ?? []) {
        conn.handingOver = route;
        if (conn.serverSpokeLast) this.scheduleHandOver(conn);
      }
    }
  }

  status(): LocalRouteStatus[] {
    return [...this.routes.values()].map((r) => ({ ...r, to: { ...r.to } }));
  }

  private async openTcp(
    tunnel: Outbound,
    host: string,
    port: number,
    signal: AbortSignal | undefined,
  ): Promise<Duplex> {
    const key = `${host}:${port}`;
    const route = this.routes.get(key);
    if (route && (this.resting.get(key) ?? 0) <= Date.now()) {
      try {
        const socket = await dialDirect(route.to.host, route.to.port, signal);
        route.connections++;
        this.direct.add(socket);
        return socket;
      } catch (err) {
        if (signal?.aborted) throw err;
        this.resting.set(key, Date.now() + REST_AFTER_FAILURE_MS);
        this.log?.debug('local route did not answer; through the cluster', {
          service: route.service,
          to: `${route.to.host}:${route.to.port}`,
          error: errorText(err),
        });
      }
    }
    if (route) route.fellBack++;
    return tunnel.openTcp(host, port, signal);
  }

  /** Watches connections that went through the cluster, in case a route for them comes later. */
  private joined(key: string, local: net.Socket, remote: Duplex): void {
    if (this.direct.has(remote)) return;
    const conn: Tunnelled = { local, remote, serverSpokeLast: false, lastBytesAt: Date.now() };
    const set = this.tunnelled.get(key) ?? new Set<Tunnelled>();
    this.tunnelled.set(key, set);
    set.add(conn);
    local.on('data', () => {
      conn.serverSpokeLast = false;
      conn.lastBytesAt = Date.now();
    });
    remote.on('data', () => {
      conn.serverSpokeLast = true;
      conn.lastBytesAt = Date.now();
      if (conn.handingOver && !conn.timer) this.scheduleHandOver(conn);
    });
    local.once('close', () => {
      clearTimeout(conn.timer);
      set.delete(conn);
      if (set.size === 0) this.tunnelled.delete(key);
    });
  }

  private scheduleHandOver(conn: Tunnelled): void {
    clearTimeout(conn.timer);
    const left = HAND_OVER_QUIET_MS - (Date.now() - conn.lastBytesAt);
    conn.timer = setTimeout(() => this.handOver(conn), Math.max(0, left));
  }

  private handOver(conn: Tunnelled): void {
    conn.timer = undefined;
    // The client spoke since: the server's next answer arms the timer again.
    if (!conn.serverSpokeLast || conn.local.destroyed || !conn.handingOver) return;
    if (Date.now() - conn.lastBytesAt < HAND_OVER_QUIET_MS) {
      this.scheduleHandOver(conn);
      return;
    }
    conn.handingOver.handedOver++;
    conn.handingOver = undefined;
    // FIN both ways; each side's own FIN in reply ends the join cleanly.
    conn.local.end();
    conn.remote.end();
    const stuck = setTimeout(() => {
      conn.local.destroy();
      conn.remote.destroy();
    }, HAND_OVER_CLOSE_MS);
    stuck.unref();
    conn.local.once('close', () => clearTimeout(stuck));
  }
}

function dialDirect(host: string, port: number, signal?: AbortSignal): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, timeout: DIRECT_DIAL_TIMEOUT_MS });
    const fail = (err: Error) => {
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      reject(err);
    };
    const onAbort = () => fail(new Error('aborted'));
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('timeout', () => fail(new Error(`no answer within ${DIRECT_DIAL_TIMEOUT_MS} ms`)));
    socket.once('error', fail);
    socket.once('connect', () => {
      signal?.removeEventListener('abort', onAbort);
      socket.setTimeout(0);
      socket.removeListener('error', fail);
      // Whoever joins the socket listens for its errors; until then one must not crash the daemon.
      socket.on('error', () => {});
      resolve(socket);
    });
  });
}

/** The table as the CLI sends it, checked field by field. */
export function parseLocalRoutes(value: unknown): LocalRoute[] {
  if (!Array.isArray(value)) throw bad('expected a JSON array of routes');
  return value.map((item, i) => {
    const r = item as Partial<LocalRoute> | null;
    const port = (p: unknown) => typeof p === 'number' && Number.isInteger(p) && p > 0 && p < 65536;
    if (
      typeof r !== 'object' ||
      r === null ||
      typeof r.service !== 'string' ||
      typeof r.clusterIp !== 'string' ||
      net.isIP(r.clusterIp) === 0 ||
      !port(r.port) ||
      typeof r.to !== 'object' ||
      r.to === null ||
      typeof r.to.host !== 'string' ||
      net.isIP(r.to.host) === 0 ||
      !port(r.to.port) ||
      typeof r.container !== 'string'
    )
      throw bad(`route ${i} is not {service, clusterIp, port, to: {host, port}, container}`);
    return {
      service: r.service,
      clusterIp: r.clusterIp,
      port: r.port as number,
      to: { host: r.to.host, port: r.to.port },
      container: r.container,
    };
  });
}

function bad(message: string): DevboxError {
  return new DevboxError('BAD_INPUT', `local routes: ${message}`);
}
