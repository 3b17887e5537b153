import net from 'node:net';
import os from 'node:os';
import type { AgentStats, InterceptSpec } from '../tunnel/protocol.js';
import { AGENT_FEATURES, PROTOCOL_VERSION } from '../tunnel/protocol.js';
import { listen } from '../util/listen.js';
import type { Logger } from '../util/log.js';
import type { AgentConfig } from './config.js';
import { DnsRelay } from './dns-relay.js';
import { createHandlers } from './handlers.js';
import { HttpRouting, type RequestRewriter } from './http/index.js';
import { ShareTable, shareRewriter } from './http/share.js';
import { Interceptor } from './intercept.js';
import { AgentCounters } from './stats.js';
import { TunnelServer } from './tunnel-server.js';

/** A started agent. */
export interface RunningAgent {
  /** Bound tunnel port (useful when configured as 0). */
  readonly tunnelPort: number;
  /** Intercepts as bound. */
  readonly intercepts: InterceptSpec[];
  stats(): AgentStats;
  /** Closes the listeners, sends GOAWAY and waits up to `config.shutdownGraceMs` for streams. */
  close(): Promise<void>;
}

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export interface AgentOptions {
  /** Runs on each request of a port with filtered sessions before it is matched (default: none). */
  rewriter?: RequestRewriter;
}

/** Starts the agent's tunnel endpoint and intercept listeners. */
export async function startAgent(
  config: AgentConfig,
  log: Logger = silent,
  options: AgentOptions = {},
): Promise<RunningAgent> {
  const counters = new AgentCounters();
  const dns = new DnsRelay(config.resolvConfPath);
  const shares = new ShareTable();
  let interceptor: Interceptor | undefined;
  const server = new TunnelServer({
    config,
    log,
    counters,
    handlers: createHandlers({ config, log, counters, dns }),
    hello: () => ({
      type: 'hello',
      protocol: PROTOCOL_VERSION,
      hostname: os.hostname(),
      node: process.version,
      intercepts: interceptor?.specs ?? [],
      features: [...AGENT_FEATURES],
      ...(config.kubernetesService ? { kubernetesService: config.kubernetesService } : {}),
    }),
    onRoutingChanged: () => interceptor?.drain(),
    queued: () => interceptor?.queued ?? 0,
    shares,
  });
  const http = new HttpRouting({
    sessions: server,
    counters,
    log,
    acceptWaitMs: config.acceptWaitMs,
    rewriter: shareRewriter(shares, options.rewriter),
  });
  interceptor = new Interceptor({
    http,
    specs: config.intercepts,
    host: config.interceptHost,
    queueMax: config.acceptQueueMax,
    waitMs: config.acceptWaitMs,
    log,
    counters,
    source: server,
  });
  const intercepts = await interceptor.listen();
  let address: Awaited<ReturnType<TunnelServer['listen']>>;
  try {
    address = await server.listen();
  } catch (err) {
    interceptor.close();
    throw err;
  }
  let health: net.Server | undefined;
  try {
    // Listened on last: accepting here means every other listener is up.
    if (config.healthPort) health = await listenForProbes(config.interceptHost, config.healthPort);
  } catch (err) {
    interceptor.close();
    await server.close(0);
    throw err;
  }
  log.info('agent listening', {
    tunnel: `${address.address}:${address.port}`,
    intercepts: intercepts.map((i) => `${i.listenPort}->${i.appPort}`),
    protocol: PROTOCOL_VERSION,
  });
  let closing: Promise<void> | undefined;
  return {
    tunnelPort: address.port,
    intercepts,
    stats: () =>
      counters.snapshot(server.sessionCount, server.acceptPending, interceptor.queued, server.sessionStats()),
    close: () => {
      closing ??= (async () => {
        health?.close();
        interceptor.close();
        await server.close(config.shutdownGraceMs);
        http.close();
        interceptor.destroyConnections();
        log.info('agent stopped');
      })();
      return closing;
    },
  };
}

/** A port the kubelet's probes connect to: accepted, then closed. */
async function listenForProbes(host: string | undefined, port: number): Promise<net.Server> {
  const server = net.createServer((socket) => socket.on('error', () => {}).end());
  await listen(server, { host, port });
  return server;
}
