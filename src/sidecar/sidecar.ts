/**
 * The sidecar daemon assembled: three watches (agent pods, Services,
 * EndpointSlices) drive the tunnel manager and the address manager; the DNS
 * server relays through the tunnels; the status endpoint reports on all of it.
 * Every external piece (API client, tunnel dialer, address adder) can be
 * injected, so the whole daemon runs in tests on loopback.
 */
import { setMaxListeners } from 'node:events';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  type ApiTransport,
  createApiTransport,
  Informer,
  type InformerStats,
  type TokenConnection,
  tokenConnection,
  tokenEndpoint,
} from '../kube/api/index.js';
import { errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { AddressManager, type AddressMode, type AddressStatus, type ErrorRecord } from './address-manager.js';
import { createAgentDialer } from './agent-dialer.js';
import type { SidecarConfig } from './config.js';
import { type DnsServer, type DnsStats, startDnsServer } from './dns-server.js';
import { rewriteARecords } from './dns-wire.js';
import { newTrafficStats, type TrafficStats } from './forwarders.js';
import { createInboundHandler, type InboundStats, newInboundStats } from './inbound.js';
import { InboundDrain } from './inbound-drain.js';
import { renewLease } from './lease-renewer.js';
import { type ListeningPorts, procListeningPorts } from './listening-ports.js';
import { type LocalRouteStatus, LocalRoutes, parseLocalRoutes } from './local-routes.js';
import { type AddressAdder, ipCommandAdder } from './loopback.js';
import { type NatOpener, systemNat } from './nat.js';
import { type AgentPod, paths, type ServiceInfo, toAgentPod } from './resources.js';
import { answeredNamespace, ServiceWatches } from './service-watches.js';
import { SessionShares } from './shares.js';
import { type StatusServer, startStatusServer } from './status-server.js';
import { refreshToken } from './token-refresher.js';
import type { TunnelDialer } from './tunnel-link.js';
import { TunnelManager, type TunnelStatus } from './tunnel-manager.js';

/** How API failures name the sidecar's credentials. */
const SIDECAR_CREDENTIALS = {
  context: "the sidecar's token",
  hints: {
    unauthorized: "the sidecar's token expired or was revoked: run devbox up again",
    forbidden:
      "the sidecar's service account is not allowed this: check its Role and RoleBinding (templates/rbac/)",
  },
  maxSockets: 8,
};

export interface SidecarDeps {
  connection?: TokenConnection;
  api?: ApiTransport;
  dialer?: TunnelDialer;
  adder?: AddressAdder;
  /** Programs NAT (default: nft, else iptables-restore, in this namespace); false never tries. */
  nat?: NatOpener | false;
  /** Wildcard-bound ports of the namespace (default: read from /proc/net). */
  listeningPorts?: ListeningPorts;
  log?: Logger;
}

/** The document served at /status. */
export interface SidecarStatus {
  version: 1;
  namespace: string;
  startedAt: string;
  uptimeSeconds: number;
  /**
   * Milliseconds from process start until a tunnel was up and every Service of the own namespace
   * was reachable (first DNS answer and first connection possible); absent until then.
   */
  readyAfterMs?: number;
  rssBytes: number;
  /**
   * `nat`: real cluster addresses redirected to the sidecar; `direct`: on lo (no NAT);
   * `fallback`: 127.x aliases (no NET_ADMIN); `pending`: none set up yet.
   */
  addressMode: AddressMode;
  /**
   * With NAT: its backend, the listener's port, how many destinations (address, protocol, port)
   * are redirected and how many cluster addresses are wanted. `addresses` then lists only those
   * not (yet) fully redirected.
   */
  nat?: { backend: string; listenPort: number; targets: number; addresses: number };
  tunnels: TunnelStatus[];
  /** Outbound traffic from local clients to the cluster. */
  outbound: TrafficStats;
  /** Intercepted traffic from the cluster to the local app. */
  inbound: InboundStats;
  /** Streams open across all tunnels. */
  streamsOpen: number;
  dns: DnsStats;
  addresses: AddressStatus[];
  watches: Record<string, InformerStats>;
  /** Namespaces whose Services a local name resolved into: listened on, not readable, or pending. */
  otherNamespaces: Record<string, 'listening' | 'unreadable' | 'pending'>;
  /** Services of other local sessions reached directly on the Docker network (local-routes.ts). */
  localRoutes?: LocalRouteStatus[];
  lastErrors: ErrorRecord[];
  /** The agents' own counters by pod (intercepted vs passed through, …); only on the HTTP endpoint. */
  agents?: Record<string, unknown>;
}

export interface RunningSidecar {
  readonly dnsPort: number;
  readonly statusPort: number;
  status(): SidecarStatus;
  /** Closes listeners, removes addresses, closes tunnels. */
  close(): Promise<void>;
}

const ERRORS_KEPT = 20;
/** How long a DNS answer naming another namespace waits for that namespace's Services. */
const OTHER_NAMESPACE_WAIT_MS = 2_000;

export async function startSidecar(config: SidecarConfig, deps: SidecarDeps = {}): Promise<RunningSidecar> {
  const log = deps.log;
  const startedAt = new Date();
  const lastErrors: ErrorRecord[] = [];
  const recordError = (record: ErrorRecord) => {
    lastErrors.push(record);
    if (lastErrors.length > ERRORS_KEPT) lastErrors.shift();
  };
  const onError = (what: string, err: unknown) =>
    recordError({ at: new Date().toISOString(), what, error: errorText(err) });

  const hostWarning = apiHostWarning(config.apiServer, readHostsFile());
  if (hostWarning) log?.warn(hostWarning);

  const connection = deps.connection ?? tokenConnection(config);
  const api = deps.api ?? createApiTransport(tokenEndpoint(connection, SIDECAR_CREDENTIALS));
  const outboundStats = newTrafficStats();
  const inboundStats = newInboundStats();
  const inboundDrain = new InboundDrain();

  const tunnels = new TunnelManager({
    dialer:
      deps.dialer ??
      createAgentDialer({
        connection,
        namespace: config.namespace,
        sessionToken: config.sessionToken,
        transport: config.portForward,
        ...(config.route ? { route: config.route } : {}),
        ...(config.sessionId ? { sessionId: config.sessionId } : {}),
      }),
    agentPort: config.agentTunnelPort,
    onInbound: createInboundHandler({
      interceptPorts: config.interceptPorts,
      stats: inboundStats,
      onError,
      drain: inboundDrain,
    }),
    log,
  });
  const localRoutes = new LocalRoutes(tunnels, log);
  const addresses = new AddressManager({
    adder: deps.adder ?? ipCommandAdder(),
    outbound: localRoutes.outbound,
    stats: outboundStats,
    forceFallback: config.forceFallback,
    nat: config.nat === 'off' || deps.nat === false ? undefined : (deps.nat ?? systemNat()),
    natPort: config.natPort || undefined,
    appPorts: [...config.appPorts, ...config.interceptPorts.map((p) => p.appPort)],
    listeningPorts: deps.listeningPorts ?? (() => procListeningPorts()),
    onError: recordError,
    log,
  });

  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) {
      await close().catch((err) => log?.warn('shutdown step failed', { error: errorText(err) }));
    }
  };

  let dns: DnsServer;
  let serviceWatches: ServiceWatches;
  let statusServer: StatusServer;
  const watches = new AbortController();
  // Every open watch listens on it: two per namespace watched, well past the default warning at 10.
  setMaxListeners(0, watches.signal);
  try {
    dns = await startDnsServer({
      address: config.dnsAddress,
      port: config.dnsPort,
      relay: async (query, signal) => {
        const reply = await tunnels.dnsQuery(query, signal);
        // A name in another namespace: its Services are listened on before the answer goes out.
        const namespace = answeredNamespace(reply, config.namespace);
        if (namespace) {
          const listening = serviceWatches.watch(namespace).then(() => addresses.settled());
          let timer: NodeJS.Timeout | undefined;
          await Promise.race([
            listening,
            new Promise<void>((resolve) => (timer = setTimeout(resolve, OTHER_NAMESPACE_WAIT_MS))),
          ]);
          clearTimeout(timer);
        }
        return reply;
      },
      rewrite: (reply) =>
        addresses.addressMode === 'fallback'
          ? rewriteARecords(reply, (ip) => addresses.localAddressFor(ip))
          : reply,
      log,
    });
    closers.push(() => dns.close());
    closers.push(() => tunnels.close());
    closers.push(() => addresses.close());

    const pods = new Informer<AgentPod>({
      api,
      path: paths.pods(config.namespace),
      labelSelector: config.agentSelector,
      transform: (obj) => toAgentPod(obj, config.agentContainer),
      onChange: () => tunnels.update(pods.store.values()),
      log,
    });
    // The agent pods first: the tunnel is what everything else waits for.
    const running = pods.run(watches.signal);
    serviceWatches = new ServiceWatches({
      api,
      home: config.namespace,
      onChange: () =>
        addresses.setDesired(
          withKubernetesService(serviceWatches.services(), config),
          serviceWatches.slices(),
          config.namespace,
        ),
      signal: watches.signal,
      log,
    });
    closers.push(async () => {
      watches.abort();
      await Promise.all([running, serviceWatches.close()]);
    });
    let readyAfterMs: number | undefined;
    void (async () => {
      await serviceWatches.watch(config.namespace);
      await addresses.settled();
      while (!tunnels.ready && !watches.signal.aborted) await new Promise((r) => setTimeout(r, 20));
      if (watches.signal.aborted) return;
      readyAfterMs = Math.round(process.uptime() * 1000);
      log?.info('sidecar ready', { readyAfterMs, addressMode: addresses.addressMode });
    })();
    if (config.sessionLease) {
      const lease = renewLease({ api, namespace: config.namespace, name: config.sessionLease, log, onError });
      closers.push(async () => lease.stop());
    }
    if (config.tokenRefresh && config.tokenFile) {
      const refresher = refreshToken({
        api,
        namespace: config.namespace,
        refresh: config.tokenRefresh,
        tokenFile: config.tokenFile,
        log,
        onError,
      });
      closers.push(async () => refresher.stop());
    }

    const snapshot = (): SidecarStatus => {
      const tunnelStatus = tunnels.status();
      return {
        version: 1,
        namespace: config.namespace,
        startedAt: startedAt.toISOString(),
        uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
        ...(readyAfterMs !== undefined ? { readyAfterMs } : {}),
        rssBytes: process.memoryUsage.rss(),
        addressMode: addresses.addressMode,
        ...(addresses.natInfo() ? { nat: addresses.natInfo() } : {}),
        tunnels: tunnelStatus,
        outbound: { ...outboundStats },
        inbound: { ...inboundStats },
        streamsOpen: tunnelStatus.reduce((n, t) => n + t.streamsOpen, 0),
        dns: { ...dns.stats },
        addresses: addresses.status(),
        watches: {
          pods: { ...pods.stats },
          services: { ...serviceWatches.home.services.stats },
          endpointSlices: { ...serviceWatches.home.slices.stats },
        },
        otherNamespaces: serviceWatches.others(),
        localRoutes: localRoutes.status(),
        lastErrors: [...lastErrors, ...watchErrors([pods, ...serviceWatches.informers()])].slice(
          -ERRORS_KEPT,
        ),
      };
    };

    statusServer = await startStatusServer({
      address: config.statusAddress,
      port: config.statusPort,
      snapshot: async () => ({ ...snapshot(), agents: await tunnels.agentStats(1000) }),
      healthy: () => tunnels.ready,
      shares: new SessionShares(config.route?.personalKey, tunnels),
      setLocalRoutes: (body) => localRoutes.set(parseLocalRoutes(body)),
      inbound: inboundDrain,
    });
    closers.push(() => statusServer.close());

    log?.info('sidecar started', {
      namespace: config.namespace,
      agentSelector: config.agentSelector,
      dns: `${config.dnsAddress}:${dns.udpPort}`,
      status: `${config.statusAddress}:${statusServer.port}`,
    });

    return {
      dnsPort: dns.udpPort,
      statusPort: statusServer.port,
      status: snapshot,
      async close() {
        log?.info('sidecar stopping');
        await closeAll();
        log?.info('sidecar stopped');
      },
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/**
 * The Services watched, plus the API server's `kubernetes` Service of `default` as the pod's env
 * names it: in-cluster clients reach the API there, and the agent dials it from the pod.
 */
export function* withKubernetesService(
  services: Iterable<ServiceInfo>,
  config: Pick<SidecarConfig, 'kubernetesService'>,
): Iterable<ServiceInfo> {
  yield* services;
  const api = config.kubernetesService;
  if (api) {
    yield {
      name: 'kubernetes',
      namespace: 'default',
      clusterIPs: [api.host],
      headless: false,
      ports: [{ name: 'https', port: api.port, protocol: 'TCP' }],
    };
  }
}

function watchErrors(informers: Informer<unknown>[]): ErrorRecord[] {
  const out: ErrorRecord[] = [];
  for (const inf of informers) {
    const s = inf.stats;
    if (s.lastError && s.lastErrorAt) out.push({ at: s.lastErrorAt, what: 'watch', error: s.lastError });
  }
  return out;
}

function readHostsFile(): string {
  try {
    return readFileSync('/etc/hosts', 'utf8');
  } catch {
    return '';
  }
}

/**
 * The sidecar's own resolv.conf points at its DNS server, which answers through
 * the tunnel, which needs the API server: a name for the API server that only
 * DNS can resolve would never resolve. An IP address (with `tlsServerName`) or
 * an /etc/hosts entry (`--add-host`) avoids that. Returns the warning to log, if any.
 */
export function apiHostWarning(apiServer: string, hostsFile: string): string | undefined {
  const host = new URL(apiServer).hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) || host === 'localhost') return undefined;
  const known = hostsFile
    .split('\n')
    .map((line) => line.replace(/#.*$/, '').trim().split(/\s+/).slice(1))
    .some((names) => names.includes(host));
  if (known) return undefined;
  return (
    `the API server name ${host} is not in /etc/hosts: resolving it goes through the sidecar's own DNS, ` +
    'which needs a tunnel, which needs the API server; pass its IP address as apiServer with tlsServerName set to the name'
  );
}
