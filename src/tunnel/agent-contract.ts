/**
 * The agent's contract: the environment the agent container is started with. `devbox up` writes it
 * into the pod template (`kube/intercept.ts`, through {@link encodeAgentEnv}); the agent reads it at
 * start (`agent/config.ts`, through {@link decodeAgentEnv}); whoever needs to know how a running
 * agent was started (a resumed `up`, a restore without its record) reads it back from the pod
 * template with {@link decodeAgentContainerEnv}. No other code names these variables.
 *
 * Variables
 * ---------
 * `DEVBOX_AGENT_TOKEN`  required. The token the sidecar presents (`devbox-token`, see protocol.ts).
 *                       Written as a `secretKeyRef` to the session's token Secret, never as a literal
 *                       in the template.
 * `DEVBOX_INTERCEPT`    the intercepts, `listenPort:appPort` pairs separated by commas (spaces are
 *                       accepted on read): connections to `listenPort` go to the session, or to the
 *                       app on `127.0.0.1:appPort`. Empty = no intercept. A listen port appears once
 *                       and never equals its app port.
 * `DEVBOX_TUNNEL_PORT`  port of the tunnel listener on 127.0.0.1 (default {@link DEFAULT_TUNNEL_PORT}).
 * `DEVBOX_HEALTH_PORT`  the readiness probe's port (0 = none), distinct from the tunnel and intercept
 *                       ports: a probe of an intercept port would be handed to the session.
 * `DEVBOX_AGENT_SHA256` sha256 (hex) of the agent's code as `up` wrote it into the bundle ConfigMap. Read
 *                       by the start command ({@link agentStartCommand}), not by the agent: the code
 *                       is checked before any of it runs, so a changed ConfigMap cannot run in the pod.
 * `DEVBOX_SESSION`      id of the session the template was written for. The agent does not act on
 *                       it: it makes each session's template differ, so every session gets new pods
 *                       that hold its token (a ReplicaSet of an earlier session would come back with
 *                       the old one).
 * `DEVBOX_RESOLV_CONF`, `DEVBOX_ACCEPT_QUEUE`, `DEVBOX_ACCEPT_WAIT_MS`, `DEVBOX_PING_INTERVAL_MS`,
 * `DEVBOX_SUSPECT_AFTER_MS`, `DEVBOX_SESSION_TIMEOUT_MS`, `DEVBOX_DIAL_TIMEOUT_MS`,
 * `DEVBOX_SHUTDOWN_GRACE_MS`: tunables ({@link AgentTunables}); `up` writes none of them, so the
 *                       defaults of {@link AGENT_TUNABLE_DEFAULTS} hold unless someone sets them.
 *
 * Numbers are decimal integers within the ranges of {@link AGENT_TUNABLE_RANGES} and ports 1–65535.
 * A malformed value is refused with every problem listed at once, each naming its variable; the
 * agent then exits rather than guess (an agent that serves the wrong ports would cut the app off).
 *
 * Compatibility
 * -------------
 * Variables are only ever added, with a default that keeps the old behaviour; an agent ignores
 * `DEVBOX_*` names it does not know. A change of meaning needs a new variable name.
 */
import { DevboxError } from '../util/errors.js';
import type { InterceptSpec } from './protocol.js';

/** The variable names, one per setting. */
export const AGENT_ENV = {
  token: 'DEVBOX_AGENT_TOKEN',
  intercept: 'DEVBOX_INTERCEPT',
  tunnelPort: 'DEVBOX_TUNNEL_PORT',
  healthPort: 'DEVBOX_HEALTH_PORT',
  session: 'DEVBOX_SESSION',
  bundleSha256: 'DEVBOX_AGENT_SHA256',
  resolvConfPath: 'DEVBOX_RESOLV_CONF',
  acceptQueueMax: 'DEVBOX_ACCEPT_QUEUE',
  acceptWaitMs: 'DEVBOX_ACCEPT_WAIT_MS',
  pingIntervalMs: 'DEVBOX_PING_INTERVAL_MS',
  suspectAfterMs: 'DEVBOX_SUSPECT_AFTER_MS',
  sessionTimeoutMs: 'DEVBOX_SESSION_TIMEOUT_MS',
  dialTimeoutMs: 'DEVBOX_DIAL_TIMEOUT_MS',
  shutdownGraceMs: 'DEVBOX_SHUTDOWN_GRACE_MS',
} as const;

/**
 * Where the agent container sees the app container's volume mounts (`/devbox-pod/etc/config`);
 * the only tree the agent's files endpoint serves.
 */
export const AGENT_FILES_ROOT = '/devbox-pod';

/** Port of the agent's tunnel listener when DEVBOX_TUNNEL_PORT is not set. */
export const DEFAULT_TUNNEL_PORT = 47000;

/** What an agent's behaviour can be tuned with; `up` leaves them at their defaults. */
export interface AgentTunables {
  /** The pod's resolver configuration. */
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

export const AGENT_TUNABLE_DEFAULTS: AgentTunables = {
  resolvConfPath: '/etc/resolv.conf',
  acceptQueueMax: 128,
  acceptWaitMs: 5_000,
  pingIntervalMs: 500,
  suspectAfterMs: 1_500,
  sessionTimeoutMs: 15_000,
  dialTimeoutMs: 10_000,
  shutdownGraceMs: 5_000,
};

type NumericTunable = Exclude<keyof AgentTunables, 'resolvConfPath'>;

/** Accepted range of each numeric tunable. */
export const AGENT_TUNABLE_RANGES: Record<NumericTunable, readonly [min: number, max: number]> = {
  acceptQueueMax: [0, 100_000],
  acceptWaitMs: [0, 600_000],
  pingIntervalMs: [50, 60_000],
  suspectAfterMs: [100, 600_000],
  sessionTimeoutMs: [100, 3_600_000],
  dialTimeoutMs: [100, 600_000],
  shutdownGraceMs: [0, 600_000],
};

/** How `up` starts the agent: what differs from one session to the next. */
export interface AgentLaunch {
  tunnelPort: number;
  /** 0 = no readiness port. */
  healthPort: number;
  intercepts: InterceptSpec[];
  /** Id of the session the template is written for. */
  session?: string;
  /** sha256 (hex) of the agent's code, checked by the start command. */
  bundleSha256?: string;
}

/** Everything the agent reads from its environment. */
export interface AgentEnv extends AgentLaunch, AgentTunables {
  token: string;
}

/** An env entry as in a pod template (the shape of the Kubernetes `EnvVar`). */
export interface AgentEnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name?: string; key: string; optional?: boolean } };
}

/** Where the agent's token comes from: a key of a Secret (in a template) or the token itself (in tests). */
export type AgentTokenSource = { secret: string; key: string } | { value: string };

/** The agent container's env for `launch`, in a fixed order (templates of equal sessions are equal). */
export function encodeAgentEnv(launch: AgentLaunch, token: AgentTokenSource): AgentEnvVar[] {
  const env: AgentEnvVar[] = [
    'value' in token
      ? { name: AGENT_ENV.token, value: token.value }
      : { name: AGENT_ENV.token, valueFrom: { secretKeyRef: { name: token.secret, key: token.key } } },
    { name: AGENT_ENV.intercept, value: encodeIntercepts(launch.intercepts) },
    { name: AGENT_ENV.tunnelPort, value: String(launch.tunnelPort) },
    { name: AGENT_ENV.healthPort, value: String(launch.healthPort) },
  ];
  if (launch.session !== undefined) env.push({ name: AGENT_ENV.session, value: launch.session });
  if (launch.bundleSha256 !== undefined)
    env.push({ name: AGENT_ENV.bundleSha256, value: launch.bundleSha256 });
  return env;
}

/** Exit code of an agent container whose code does not match {@link AGENT_ENV.bundleSha256}. */
export const TAMPERED_BUNDLE_EXIT = 3;

/**
 * Runs before the agent's code: hashes the bundle file and imports it only when the hash is the
 * one in the pod template; otherwise logs one JSON line (the agent's log format) and exits. Plain
 * CommonJS for `node -e`, so that nothing of the bundle runs first. (The file is read twice; the
 * kubelet swaps ConfigMap contents atomically, so the gap is a start-up instant, not a window.)
 */
const VERIFY_THEN_RUN = `
const file = process.argv[1], want = process.env.${AGENT_ENV.bundleSha256};
const got = require('node:crypto').createHash('sha256').update(require('node:fs').readFileSync(file)).digest('hex');
if (got !== want) {
  console.error(JSON.stringify({ time: new Date().toISOString(), level: 'error', component: 'agent',
    msg: 'refusing to start: the agent code does not match the sha256 in the pod template (its ConfigMap was changed)',
    file, expected: want || null, actual: got, hint: 'end the session with devbox down (or devbox clean) and start it again' }));
  process.exit(${TAMPERED_BUNDLE_EXIT});
}
import(require('node:url').pathToFileURL(file).href);
`.trim();

/**
 * The agent container's command for the bundle at `bundlePath`. A small young generation:
 * connection churn otherwise grows the heap by tens of MB; gc() lets the agent free dead buffers
 * early (util/dead-buffers.ts).
 */
export function agentStartCommand(bundlePath: string): string[] {
  return ['node', '--max-semi-space-size=1', '--expose-gc', '-e', VERIFY_THEN_RUN, bundlePath];
}

/** `[{listenPort: 47002, appPort: 8080}]` → `47002:8080`. */
export function encodeIntercepts(intercepts: readonly InterceptSpec[]): string {
  return intercepts.map((i) => `${i.listenPort}:${i.appPort}`).join(',');
}

/**
 * The agent's settings from its process environment. Throws one BAD_INPUT error listing every
 * problem, each naming its variable.
 */
export function decodeAgentEnv(env: Readonly<Record<string, string | undefined>>): AgentEnv {
  const problems: string[] = [];
  const token = env[AGENT_ENV.token] ?? '';
  if (token.length === 0) problems.push(`${AGENT_ENV.token} is required`);
  const launch = decodeLaunch(env, problems);
  const tunables = decodeTunables(env, problems);
  if (problems.length > 0)
    throw contractError(problems, 'the agent container env is written by `devbox up`; re-run it');
  return { token, ...launch, ...tunables };
}

/** How an agent container in a pod template was started, as {@link decodeAgentContainerEnv} reads it. */
export interface AgentContainerEnv extends AgentLaunch {
  /** The Secret key the token is read from (undefined when the template carries a literal token). */
  tokenSecret: { name: string; key: string } | undefined;
}

/**
 * Reads back the env of an agent container found in a pod template. Throws one BAD_INPUT error
 * naming each variable that is missing or malformed; `hint` says what the user should do about it.
 */
export function decodeAgentContainerEnv(
  env: readonly AgentEnvVar[] | undefined,
  hint = 'the devbox-agent container was edited; end the session with `devbox down` and start it again',
): AgentContainerEnv {
  const problems: string[] = [];
  const literal: Record<string, string> = {};
  for (const e of env ?? []) if (e.value !== undefined) literal[e.name] = e.value;
  const tokenVar = env?.find((e) => e.name === AGENT_ENV.token);
  const ref = tokenVar?.valueFrom?.secretKeyRef;
  if (!tokenVar || (!ref?.name && !tokenVar.value)) problems.push(`${AGENT_ENV.token} is required`);
  const launch = decodeLaunch(literal, problems);
  if (literal[AGENT_ENV.tunnelPort] === undefined) problems.push(`${AGENT_ENV.tunnelPort} is missing`);
  if (problems.length > 0) throw contractError(problems, hint);
  return { ...launch, tokenSecret: ref?.name ? { name: ref.name, key: ref.key } : undefined };
}

function contractError(problems: string[], hint: string): DevboxError {
  return new DevboxError('BAD_INPUT', `invalid agent configuration: ${problems.join('; ')}`, { hint });
}

function decodeLaunch(env: Readonly<Record<string, string | undefined>>, problems: string[]): AgentLaunch {
  const tunnelPort = integer(env, AGENT_ENV.tunnelPort, DEFAULT_TUNNEL_PORT, 1, 65535, problems);
  const healthPort = integer(env, AGENT_ENV.healthPort, 0, 0, 65535, problems);
  const intercepts = decodeIntercepts(env[AGENT_ENV.intercept] ?? '', problems);
  for (const spec of intercepts) {
    if (spec.listenPort === tunnelPort)
      problems.push(
        `${AGENT_ENV.intercept} listen port ${spec.listenPort} collides with ${AGENT_ENV.tunnelPort}`,
      );
    if (spec.listenPort === healthPort)
      problems.push(
        `${AGENT_ENV.intercept} listen port ${spec.listenPort} collides with ${AGENT_ENV.healthPort}`,
      );
  }
  const session = env[AGENT_ENV.session]?.trim();
  const bundleSha256 = env[AGENT_ENV.bundleSha256]?.trim();
  return {
    tunnelPort,
    healthPort,
    intercepts,
    ...(session ? { session } : {}),
    ...(bundleSha256 ? { bundleSha256 } : {}),
  };
}

function decodeTunables(
  env: Readonly<Record<string, string | undefined>>,
  problems: string[],
): AgentTunables {
  const out: AgentTunables = {
    ...AGENT_TUNABLE_DEFAULTS,
    resolvConfPath: env[AGENT_ENV.resolvConfPath]?.trim() || AGENT_TUNABLE_DEFAULTS.resolvConfPath,
  };
  for (const [key, [min, max]] of Object.entries(AGENT_TUNABLE_RANGES) as [
    NumericTunable,
    [number, number],
  ][]) {
    out[key] = integer(env, AGENT_ENV[key], AGENT_TUNABLE_DEFAULTS[key], min, max, problems);
  }
  return out;
}

function integer(
  env: Readonly<Record<string, string | undefined>>,
  name: string,
  fallback: number,
  min: number,
  max: number,
  problems: string[],
): number {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  if (!/^\d{1,10}$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
    return fallback;
  }
  return Number(raw);
}

/** `8080:80,9090:9000` (commas or spaces) → intercept specs; problems are appended. */
export function decodeIntercepts(text: string, problems: string[]): InterceptSpec[] {
  const specs: InterceptSpec[] = [];
  const seen = new Set<number>();
  for (const item of text.split(/[\s,]+/).filter(Boolean)) {
    const m = /^(\d{1,5}):(\d{1,5})$/.exec(item);
    const listenPort = m ? Number(m[1]) : Number.NaN;
    const appPort = m ? Number(m[2]) : Number.NaN;
    if (!m || listenPort < 1 || listenPort > 65535 || appPort < 1 || appPort > 65535) {
      problems.push(`${AGENT_ENV.intercept} entry "${item}" is not listenPort:appPort`);
      continue;
    }
    if (listenPort === appPort) {
      problems.push(`${AGENT_ENV.intercept} entry "${item}" listens on the app's own port`);
      continue;
    }
    if (seen.has(listenPort)) {
      problems.push(`${AGENT_ENV.intercept} listens twice on ${listenPort}`);
      continue;
    }
    seen.add(listenPort);
    specs.push({ listenPort, appPort });
  }
  return specs;
}
