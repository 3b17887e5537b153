import type { AgentStats, SessionStats } from '../tunnel/protocol.js';

/** Mutable counters behind {@link AgentStats}. */
export class AgentCounters {
  readonly startedAt = Date.now();
  readonly open = { tcp: 0, udp: 0, dns: 0, files: 0, inbound: 0 };
  readonly totals: AgentStats['totals'] = {
    tcpOpened: 0,
    tcpFailed: 0,
    udpFlows: 0,
    dnsQueries: 0,
    dnsFailures: 0,
    intercepted: 0,
    passedThrough: 0,
    handedOver: 0,
    localRefused: 0,
    queueOverflows: 0,
    protocolErrors: 0,
    toApp: 0,
    notHttp: 0,
  };

  /** Counts a stream of `kind` as open until `closable` emits 'close'. */
  track(
    kind: keyof AgentCounters['open'],
    closable: { once(event: 'close', fn: () => void): unknown },
  ): void {
    this.open[kind]++;
    closable.once('close', () => {
      this.open[kind]--;
    });
  }

  snapshot(
    sessions: number,
    acceptPending: number,
    queued: number,
    bySession: Record<string, SessionStats> = {},
  ): AgentStats {
    return {
      bySession,
      uptimeMs: Date.now() - this.startedAt,
      sessions,
      open: { ...this.open, acceptPending },
      totals: { ...this.totals },
      queued,
    };
  }
}
