import type { InterceptSpec } from '../tunnel/protocol.js';
import { DevboxError } from '../util/errors.js';

/** Everything the agent reads from its environment, parsed once. */
export interface AgentConfig {
  /** Token the sidecar must present (DEVBOX_AGENT_TOKEN). */
  token: string;
  /** Tunnel listener; loopback only, reachable from outside the pod through port-forward alone. */
  tunnelHost: string;
  tunnelPort: number;
  /** Intercepts (DEVBOX_INTERCEPT, `listenPort:appPort` pairs). */
  intercepts: InterceptSpec[];
  /** Address the intercept ports listen on; undefined = all interfaces. */
  interceptHost: string | undefined;
  /**
   * The kubelet's readiness probe port (DEVBOX_HEALTH_PORT; 0 = none), on the intercept address:
   * a probe of an intercept port would be handed to the session like any other connection.
   */
  healthPort: number;
  /** The pod's resolver configuration (DEVBOX_RESOLV_CONF). */
  resolvConfPath: string;
  /** Inbound connections that may wait for an accept stream; beyond, they pass through. */
  acceptQueueMax: number;
  /** How long one inbound connection waits for an accept stream before passing through. */
  acceptWaitMs: number;
  /** Liveness: ping period, silence before a session stops getting inbound traffic, silence before it is dropped. */
  pingIntervalMs: number;
  suspectAfterMs: number;
  sessionTimeoutMs: number;
  /** Outbound TCP connect timeout. */
  dialTimeoutMs: number;
  /** On SIGTERM, how long open streams may finish after GOAWAY. */
  shutdownGraceMs: number;
}

export const AGENT_DEFAULTS = {
  tunnelHost: '127.0.0.1',
  tunnelPort: 9901,
  healthPort: 0,
  resolvConfPath: '/etc/resolv.conf',
  acceptQueueMax: 128,
  acceptWaitMs: 5_000,
  pingIntervalMs: 500,
  suspectAfterMs: 1_500,
  sessionTimeoutMs: 15_000,
  dialTimeoutMs: 10_000,
  shutdownGraceMs: 5_000,
} as const;

/**
 * Reads the agent's configuration from `env`. Reports every problem at once in one BAD_INPUT error.
 * Variables: DEVBOX_AGENT_TOKEN (required), DEVBOX_TUNNEL_PORT, DEVBOX_INTERCEPT, DEVBOX_HEALTH_PORT, DEVBOX_RESOLV_CONF,
 * DEVBOX_ACCEPT_QUEUE, DEVBOX_ACCEPT_WAIT_MS, DEVBOX_PING_INTERVAL_MS, DEVBOX_SUSPECT_AFTER_MS,
 * DEVBOX_SESSION_TIMEOUT_MS, DEVBOX_DIAL_TIMEOUT_MS, DEVBOX_SHUTDOWN_GRACE_MS.
 */
export function parseAgentConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const problems: string[] = [];
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name]?.trim();
    if (!raw) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
      return fallback;
    }
    return Number(raw);
  };
  const token = env.DEVBOX_AGENT_TOKEN ?? '';
  if (token.length === 0) problems.push('DEVBOX_AGENT_TOKEN is required');
  const intercepts = parseIntercepts(env.DEVBOX_INTERCEPT ?? '', problems);
  const config: AgentConfig = {
    token,
    tunnelHost: AGENT_DEFAULTS.tunnelHost,
    tunnelPort: int('DEVBOX_TUNNEL_PORT', AGENT_DEFAULTS.tunnelPort, 1, 65535),
    intercepts,
    interceptHost: undefined,
    healthPort: int('DEVBOX_HEALTH_PORT', AGENT_DEFAULTS.healthPort, 0, 65535),
    resolvConfPath: env.DEVBOX_RESOLV_CONF?.trim() || AGENT_DEFAULTS.resolvConfPath,
    acceptQueueMax: int('DEVBOX_ACCEPT_QUEUE', AGENT_DEFAULTS.acceptQueueMax, 0, 100_000),
    acceptWaitMs: int('DEVBOX_ACCEPT_WAIT_MS', AGENT_DEFAULTS.acceptWaitMs, 0, 600_000),
    pingIntervalMs: int('DEVBOX_PING_INTERVAL_MS', AGENT_DEFAULTS.pingIntervalMs, 50, 60_000),
    suspectAfterMs: int('DEVBOX_SUSPECT_AFTER_MS', AGENT_DEFAULTS.suspectAfterMs, 100, 600_000),
    sessionTimeoutMs: int('DEVBOX_SESSION_TIMEOUT_MS', AGENT_DEFAULTS.sessionTimeoutMs, 100, 3_600_000),
    dialTimeoutMs: int('DEVBOX_DIAL_TIMEOUT_MS', AGENT_DEFAULTS.dialTimeoutMs, 100, 600_000),
    shutdownGraceMs: int('DEVBOX_SHUTDOWN_GRACE_MS', AGENT_DEFAULTS.shutdownGraceMs, 0, 600_000),
  };
  for (const spec of intercepts) {
    if (spec.listenPort === config.tunnelPort) {
      problems.push(`DEVBOX_INTERCEPT listen port ${spec.listenPort} collides with DEVBOX_TUNNEL_PORT`);
    }
    if (spec.listenPort === config.healthPort) {
      problems.push(`DEVBOX_INTERCEPT listen port ${spec.listenPort} collides with DEVBOX_HEALTH_PORT`);
    }
  }
  if (problems.length > 0) {
    throw new DevboxError('BAD_INPUT', `invalid agent configuration: ${problems.join('; ')}`, {
      hint: 'the agent container env is written by `devbox up`; re-run it',
    });
  }
  return config;
}

/** `8080:80,9090:9000` (commas or spaces) → intercept specs; problems are appended. */
export function parseIntercepts(text: string, problems: string[]): InterceptSpec[] {
  const specs: InterceptSpec[] = [];
  const seen = new Set<number>();
  for (const item of text.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(\d{1,5}):(\d{1,5})$/.exec(item);
    const listenPort = m ? Number(m[1]) : Number.NaN;
    const appPort = m ? Number(m[2]) : Number.NaN;
    if (!m || listenPort < 1 || listenPort > 65535 || appPort < 1 || appPort > 65535) {
      problems.push(`DEVBOX_INTERCEPT entry "${item}" is not listenPort:appPort`);
      continue;
    }
    if (listenPort === appPort) {
      problems.push(`DEVBOX_INTERCEPT entry "${item}" listens on the app's own port`);
      continue;
    }
    if (seen.has(listenPort)) {
      problems.push(`DEVBOX_INTERCEPT listens twice on ${listenPort}`);
      continue;
    }
    seen.add(listenPort);
    specs.push({ listenPort, appPort });
  }
  return specs;
}
