/**
 * The sidecar's configuration: one JSON file and/or environment variables,
 * parsed and checked here and nowhere else. Every problem is reported at once,
 * each naming both its JSON key and its environment variable.
 */

import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { TokenSource } from '../kube/api/index.js';
import { PORT_FORWARD_TRANSPORTS, type PortForwardTransport } from '../tunnel/portforward.js';
import { decodeRoute, encodeRoute, type SessionRoute } from '../tunnel/route.js';
import { DevboxError } from '../util/errors.js';

/** An agent stream for `port` (the pod's container port) goes to 127.0.0.1:`appPort` locally. */
export interface InterceptPort {
  port: number;
  appPort: number;
}

/** The API server as reachable from inside the sidecar, and its credentials (TokenSource), then the rest. */
export interface SidecarConfig extends TokenSource {
  namespace: string;
  /** Label selector of the agent pods (`app=api,devbox.io/agent=true`). */
  agentSelector: string;
  /** Shared secret the agent expects on every tunnel. */
  sessionToken: string;
  /** The agent's tunnel port inside its pod (reached only through port-forward). */
  agentTunnelPort: number;
  interceptPorts: InterceptPort[];
  /** HTTP status endpoint; 127.0.0.1 unless a published port needs 0.0.0.0. */
  statusPort: number;
  statusAddress: string;
  /** Container of the agent pods whose readiness decides whether a tunnel is opened. */
  agentContainer: string;
  /** DNS listener; defaults 127.0.0.1:53. */
  dnsAddress: string;
  dnsPort: number;
  /**
   * Forces the no-NET_ADMIN mode (127.x aliases + rewritten DNS answers). Normally this mode is
   * chosen automatically when NAT and `ip addr add` are refused.
   */
  forceFallback: boolean;
  /** `auto`: redirect cluster addresses by NAT where it can be programmed; `off`: bind them instead. */
  nat: 'auto' | 'off';
  /** Port of the NAT listener; 0 lets the kernel pick one (from the ephemeral range, which apps do not declare). */
  natPort: number;
  /** Every port the app declares: never bound by the sidecar. */
  appPorts: number[];
  /**
   * The `kubernetes` Service of `default` as the pod sees it (KUBERNETES_SERVICE_HOST:PORT): always
   * reachable, though its namespace is not watched.
   */
  kubernetesService?: { host: string; port: number };
  /** Port-forward transport to the agents: auto (SPDY, then WebSocket where refused), spdy, spdy-websocket or websocket. */
  portForward: PortForwardTransport;
  /** The session's Lease in `namespace`, renewed while the sidecar lives (util/session-lease.ts). */
  sessionLease?: string;
  /** The session's id: the key of its counters in the agents' stats. */
  sessionId?: string;
  /** Which inbound requests the session takes (absent: all of them). Holds a personal key: never logged. */
  route?: SessionRoute;
  /** How the sidecar renews its own token (written to `tokenFile`) before it expires. */
  tokenRefresh?: TokenRefresh;
}

/** The sidecar's own account and the session's Secret its tokens are bound to (deleting it revokes them). */
export interface TokenRefresh {
  account: string;
  secret: string;
  secretUid: string;
  /** Lifetime asked of each new token. */
  expirationSeconds: number;
  /** RFC 3339 expiry of the token the sidecar starts with. */
  expiresAt: string;
}

interface FieldSpec {
  key: keyof SidecarConfig;
  env: string;
}

const FIELDS: FieldSpec[] = [
  { key: 'apiServer', env: 'DEVBOX_API_SERVER' },
  { key: 'token', env: 'DEVBOX_TOKEN' },
  { key: 'tokenFile', env: 'DEVBOX_TOKEN_FILE' },
  { key: 'ca', env: 'DEVBOX_CA' },
  { key: 'caFile', env: 'DEVBOX_CA_FILE' },
  { key: 'tlsServerName', env: 'DEVBOX_TLS_SERVER_NAME' },
  { key: 'namespace', env: 'DEVBOX_NAMESPACE' },
  { key: 'agentSelector', env: 'DEVBOX_AGENT_SELECTOR' },
  { key: 'sessionToken', env: 'DEVBOX_SESSION_TOKEN' },
  { key: 'agentTunnelPort', env: 'DEVBOX_AGENT_TUNNEL_PORT' },
  { key: 'interceptPorts', env: 'DEVBOX_INTERCEPT_PORTS' },
  { key: 'statusPort', env: 'DEVBOX_STATUS_PORT' },
  { key: 'statusAddress', env: 'DEVBOX_STATUS_ADDRESS' },
  { key: 'agentContainer', env: 'DEVBOX_AGENT_CONTAINER' },
  { key: 'dnsAddress', env: 'DEVBOX_DNS_ADDRESS' },
  { key: 'dnsPort', env: 'DEVBOX_DNS_PORT' },
  { key: 'forceFallback', env: 'DEVBOX_FORCE_FALLBACK' },
  { key: 'nat', env: 'DEVBOX_NAT' },
  { key: 'natPort', env: 'DEVBOX_NAT_PORT' },
  { key: 'appPorts', env: 'DEVBOX_APP_PORTS' },
  { key: 'kubernetesService', env: 'DEVBOX_KUBERNETES_SERVICE' },
  { key: 'portForward', env: 'DEVBOX_PORT_FORWARD' },
  { key: 'sessionLease', env: 'DEVBOX_SESSION_LEASE' },
  { key: 'sessionId', env: 'DEVBOX_SESSION_ID' },
  { key: 'route', env: 'DEVBOX_ROUTE' },
  { key: 'tokenRefresh', env: 'DEVBOX_TOKEN_REFRESH' },
];

/** Environment variable naming the JSON config file (the first command-line argument works too). */
export const CONFIG_FILE_ENV = 'DEVBOX_SIDECAR_CONFIG';

/**
 * Reads the config file (if `file` is given) and overlays environment variables,
 * which win field by field. Throws one BAD_INPUT error listing every problem.
 */
export function loadSidecarConfig(
  file: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  readFile: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): SidecarConfig {
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try {
      text = readFile(file);
    } catch (err) {
      throw new DevboxError('BAD_INPUT', `cannot read sidecar config ${file}`, {
        cause: err,
        hint: `check the path given as argument or in ${CONFIG_FILE_ENV}`,
      });
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      fromFile = parsed as Record<string, unknown>;
    } catch (err) {
      throw new DevboxError('BAD_INPUT', `sidecar config ${file} is not a JSON object`, { cause: err });
    }
  }
  const raw: Record<string, unknown> = { ...fromFile };
  for (const { key, env: name } of FIELDS) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  return parseSidecarConfig(raw);
}

/** Validates a raw object (JSON keys, values possibly strings from env). */
export function parseSidecarConfig(raw: Record<string, unknown>): SidecarConfig {
  const problems: string[] = [];
  const envOf = (key: keyof SidecarConfig) => FIELDS.find((f) => f.key === key)?.env ?? '';
  const missing = (key: keyof SidecarConfig) =>
    problems.push(`missing ${key} (JSON "${key}" or env ${envOf(key)})`);
  const bad = (key: keyof SidecarConfig, why: string) =>
    problems.push(`invalid ${key} (JSON "${key}" or env ${envOf(key)}): ${why}`);

  const str = (key: keyof SidecarConfig, required: boolean): string | undefined => {
    const v = raw[key];
    if (v === undefined || v === null || v === '') {
      if (required) missing(key);
      return undefined;
    }
    if (typeof v !== 'string') {
      bad(key, 'must be a string');
      return undefined;
    }
    return v;
  };
  const port = (key: keyof SidecarConfig, fallback?: number): number => {
    const v = raw[key];
    if (v === undefined || v === null || v === '') {
      if (fallback === undefined) missing(key);
      return fallback ?? 0;
    }
    const n = typeof v === 'string' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
      bad(key, `expected a port number, got ${JSON.stringify(v)}`);
      return 0;
    }
    return n;
  };

  const apiServer = str('apiServer', true);
  if (apiServer) {
    try {
      const url = new URL(apiServer);
      if (url.protocol !== 'https:' && url.protocol !== 'http:') bad('apiServer', 'must be an https:// URL');
    } catch {
      bad('apiServer', `not a URL: ${apiServer}`);
    }
  }
  const token = str('token', false);
  const tokenFile = str('tokenFile', false);
  if (!token && !tokenFile)
    problems.push('missing token (JSON "token" or env DEVBOX_TOKEN, or "tokenFile" / DEVBOX_TOKEN_FILE)');
  const ca = str('ca', false);
  const caFile = str('caFile', false);
  const tlsServerName = str('tlsServerName', false);
  const namespace = str('namespace', true);
  const agentSelector = str('agentSelector', true);
  const sessionToken = str('sessionToken', true);
  const agentTunnelPort = port('agentTunnelPort');
  if (raw.agentTunnelPort !== undefined && agentTunnelPort === 0) bad('agentTunnelPort', 'must not be 0');
  const statusPort = port('statusPort');
  const statusAddress = str('statusAddress', false) ?? '127.0.0.1';
  const agentContainer = str('agentContainer', false) ?? 'devbox-agent';
  const dnsAddress = str('dnsAddress', false) ?? '127.0.0.1';
  const dnsPort = port('dnsPort', 53);
  const interceptPorts = parseInterceptPorts(raw.interceptPorts, (why) => bad('interceptPorts', why));
  const portForward = str('portForward', false) ?? 'auto';
  if (!(PORT_FORWARD_TRANSPORTS as readonly string[]).includes(portForward))
    bad('portForward', `must be one of ${PORT_FORWARD_TRANSPORTS.join(', ')}`);
  const forceFallback =
    raw.forceFallback === true || raw.forceFallback === 'true' || raw.forceFallback === '1';
  const nat = str('nat', false) ?? 'auto';
  if (nat !== 'auto' && nat !== 'off') bad('nat', 'must be auto or off');
  const natPort = port('natPort', 0);
  const appPorts = parsePortList(raw.appPorts, (why) => bad('appPorts', why));
  if (appPorts.includes(natPort)) bad('natPort', `${natPort} is one of the app's ports`);
  const kubernetesService = parseHostPort(raw.kubernetesService, (why) => bad('kubernetesService', why));
  const sessionLease = str('sessionLease', false);
  const sessionId = str('sessionId', false);
  if (sessionId !== undefined && !/^[A-Za-z0-9-]{1,64}$/.test(sessionId))
    bad('sessionId', 'must be letters, digits and dashes');
  const route = parseRoute(raw.route, (why) => bad('route', why));
  const tokenRefresh = parseTokenRefresh(raw.tokenRefresh, (why) => bad('tokenRefresh', why));
  if (tokenRefresh && !tokenFile) bad('tokenRefresh', 'needs tokenFile, where each new token is written');

  if (problems.length > 0) {
    throw new DevboxError('BAD_INPUT', `sidecar config is incomplete:\n  - ${problems.join('\n  - ')}`, {
      hint: `pass a JSON file (argument or ${CONFIG_FILE_ENV}) or set the environment variables named above`,
    });
  }
  return {
    apiServer: apiServer!.replace(/\/+$/, ''),
    token,
    tokenFile,
    ca,
    caFile,
    tlsServerName,
    namespace: namespace!,
    agentSelector: agentSelector!,
    sessionToken: sessionToken!,
    agentTunnelPort,
    interceptPorts,
    statusPort,
    statusAddress,
    agentContainer,
    dnsAddress,
    dnsPort,
    forceFallback,
    nat: nat as SidecarConfig['nat'],
    natPort,
    appPorts,
    ...(kubernetesService ? { kubernetesService } : {}),
    portForward: portForward as PortForwardTransport,
    ...(sessionLease ? { sessionLease } : {}),
    ...(sessionId ? { sessionId } : {}),
    ...(route ? { route } : {}),
    ...(tokenRefresh ? { tokenRefresh } : {}),
  };
}

/** `{account, secret, secretUid, expirationSeconds, expiresAt}`, as an object or its JSON text (env). */
function parseTokenRefresh(value: unknown, bad: (why: string) => void): TokenRefresh | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let v = value;
  if (typeof v === 'string') {
    try {
      v = JSON.parse(v);
    } catch {
      bad('not JSON');
      return undefined;
    }
  }
  const o = v as Partial<Record<keyof TokenRefresh, unknown>>;
  const text = (x: unknown) => typeof x === 'string' && x.length > 0;
  if (typeof v !== 'object' || v === null || !text(o.account) || !text(o.secret) || !text(o.secretUid)) {
    bad('expected {account, secret, secretUid, expirationSeconds, expiresAt}');
    return undefined;
  }
  const seconds = o.expirationSeconds;
  if (typeof seconds !== 'number' || !Number.isInteger(seconds) || seconds < 600) {
    bad('expirationSeconds must be an integer of at least 600 (the API server minimum)');
    return undefined;
  }
  if (typeof o.expiresAt !== 'string' || Number.isNaN(Date.parse(o.expiresAt))) {
    bad('expiresAt must be an RFC 3339 time');
    return undefined;
  }
  return {
    account: o.account as string,
    secret: o.secret as string,
    secretUid: o.secretUid as string,
    expirationSeconds: seconds,
    expiresAt: o.expiresAt,
  };
}

/** A route as JSON, or as the env form: the `devbox-route` header's base64url. */
function parseRoute(value: unknown, bad: (why: string) => void): SessionRoute | undefined {
  if (value === undefined || value === '') return undefined;
  try {
    if (typeof value === 'string') return decodeRoute(value);
    if (typeof value === 'object' && value !== null) return decodeRoute(encodeRoute(value as SessionRoute));
    bad('must be a route object, or its base64url JSON');
  } catch (err) {
    // The message names the field at fault, never the key's value.
    bad((err as Error).message);
  }
  return undefined;
}

const isPortNumber = (n: unknown): n is number =>
  typeof n === 'number' && Number.isInteger(n) && n > 0 && n <= 65535;

/** Accepts `[8080, 9090]` or the env form `"8080,9090"`. */
function parsePortList(value: unknown, bad: (why: string) => void): number[] {
  if (value === undefined || value === null || value === '') return [];
  const items = typeof value === 'string' ? value.split(',').map((s) => Number(s.trim())) : value;
  if (!Array.isArray(items)) {
    bad('must be a list of ports');
    return [];
  }
  const out: number[] = [];
  for (const item of items) {
    if (isPortNumber(item)) out.push(item);
    else bad(`bad port ${JSON.stringify(item)}`);
  }
  return [...new Set(out)];
}

/** Accepts `{host, port}` or `"10.96.0.1:443"` (`[fd00::1]:443` for IPv6). */
function parseHostPort(
  value: unknown,
  bad: (why: string) => void,
): { host: string; port: number } | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  let host: unknown;
  let port: unknown;
  if (typeof value === 'string') {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(value.trim());
    [host, port] = m ? [m[1], Number(m[2])] : [undefined, undefined];
  } else if (typeof value === 'object') {
    host = (value as Record<string, unknown>).host;
    port = Number((value as Record<string, unknown>).port);
  }
  if (typeof host !== 'string' || !isIP(host) || !isPortNumber(port)) {
    bad(`expected an IP address and port such as 10.96.0.1:443, got ${JSON.stringify(value)}`);
    return undefined;
  }
  return { host, port };
}

/**
 * Accepts `[{port, appPort?}]`, `[8080, 9090]`, or the env form `"8080:3000,9090"`
 * (agent-side container port, then the local port when it differs).
 */
function parseInterceptPorts(value: unknown, bad: (why: string) => void): InterceptPort[] {
  if (value === undefined || value === null || value === '') return [];
  const items: unknown[] =
    typeof value === 'string' ? value.split(',').map((s) => s.trim()) : (value as unknown[]);
  if (!Array.isArray(items)) {
    bad('must be a list');
    return [];
  }
  const out: InterceptPort[] = [];
  const isPort = (n: unknown): n is number =>
    typeof n === 'number' && Number.isInteger(n) && n > 0 && n <= 65535;
  for (const item of items) {
    let port: unknown;
    let appPort: unknown;
    if (typeof item === 'string') {
      const [a, b] = item.split(':');
      port = Number(a);
      appPort = b === undefined ? port : Number(b);
    } else if (typeof item === 'number') {
      port = item;
      appPort = item;
    } else if (typeof item === 'object' && item !== null) {
      port = (item as Record<string, unknown>).port;
      appPort = (item as Record<string, unknown>).appPort ?? port;
    }
    if (!isPort(port) || !isPort(appPort)) {
      bad(`bad entry ${JSON.stringify(item)} (expected port or port:appPort)`);
      continue;
    }
    out.push({ port, appPort });
  }
  return out;
}
