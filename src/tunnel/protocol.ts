/**
 * The devbox tunnel protocol, spoken between the sidecar (client) and the agent (server).
 *
 * Transport
 * ---------
 * One byte stream per agent pod: in production a pod port-forward (`portforward.ts`: SPDY/3.1,
 * or WebSocket where SPDY is refused), in tests any TCP socket. On top of it runs cleartext HTTP/2 (h2c, prior knowledge): the sidecar is
 * the client (`http2.connect('http://devbox', { createConnection: () => duplex })`), the agent serves
 * `http2.createServer()` fed with sockets accepted by a `net.Server` on 127.0.0.1:<tunnel port>.
 * HTTP/2 gives each stream its own flow control, half-close (END_STREAM), reset (RST_STREAM) and
 * liveness (PING); both ends use the large windows of {@link H2_SETTINGS} so that a single stream
 * is not window-bound.
 *
 * Sessions
 * --------
 * The first request of every HTTP/2 connection must be `POST /v1/session` with the headers
 * `devbox-protocol: <PROTOCOL_VERSION>` and `devbox-sidecar-nonce: <nonce>` (32 random bytes,
 * base64url). The token never travels: each side proves it holds it (`session-proof.ts`), the agent
 * first, so that a pod that is not the agent learns nothing derived from it. The agent answers
 *   - 426 when the versions differ; `devbox-error` names both versions (checked first: an older
 *     sidecar that sends the token itself gets this, never a token check),
 *   - 400 when the nonce is malformed,
 *   - 200 otherwise, with `devbox-protocol` set to its own version, `devbox-agent-nonce` and
 *     `devbox-agent-proof`.
 * The sidecar checks the agent's proof; when it does not match (a pod that is not this session's
 * agent, or an agent holding another token) it closes the connection having sent nothing more.
 * Otherwise its first control message is `{"type":"session-proof","proof":…}`; the agent closes the
 * connection when that proof is missing or wrong, and otherwise answers with `hello`.
 * The session stream then stays open for the life of the connection and carries newline-delimited
 * JSON control messages ({@link ControlMessage}) both ways.
 * Any other request on a connection whose session is not yet proved gets 401.
 * Closing the session stream closes the connection.
 *
 * Session routes: `POST /v1/session` may carry `devbox-route` (base64url JSON of a `SessionRoute`,
 * `route.ts`; absent = global) and `devbox-session-id` (the session's name, the key of its stats).
 * A global session takes whole connections of the intercept ports; a filtered session takes the
 * HTTP requests (HTTP/2 streams) that match its filter; a mirror session gets copies of them.
 * Many sessions may be open at once: at most one global, any number of filtered and mirror ones.
 * The agent answers 400 to a route it cannot use (the reason in `devbox-error`) and 409 to a
 * second global session or a filter identical to an open session's; the connection then closes.
 * While a filtered or mirror session accepts, the agent parses the HTTP on its intercept ports
 * (`agent/http/`) and uses each session's accept streams as connections to its local app, reused
 * for several requests (keep-alive) and, for HTTP/2, as one HTTP/2 connection per session and
 * port; a session is thus never given a request that is not its own. Connections that are not
 * HTTP pass through to the pod's app as before.
 *
 * Stream kinds (each an HTTP/2 request on an accepted connection)
 * ----------------------------------------------------------------
 * `POST /v1/tcp`, header `devbox-target: host:port` (IPv6 as `[addr]:port`). The agent dials the
 *   target. On success it answers 200 and the stream carries bytes both ways; a side's END_STREAM is
 *   that side's TCP FIN (half-close), RST_STREAM is a TCP reset. On failure the agent answers a
 *   non-200 status with `devbox-error-code` (an errno name such as ECONNREFUSED) and `devbox-error`
 *   (text); the sidecar then resets only its own local socket.
 * `POST /v1/udp`, header `devbox-target`, optional `devbox-idle-ms`. One stream per UDP flow. Both
 *   directions carry datagrams, each prefixed with its length as a 2-byte big-endian integer
 *   (`framing.ts`). Datagrams that meet backpressure are dropped, as UDP would. The agent ends the
 *   stream after the idle timeout (default {@link UDP_IDLE_DEFAULT_MS}).
 * `POST /v1/dns`: body = one DNS query in wire format (at most 65535 bytes). The agent relays it to
 *   the pod's nameservers from its resolv.conf (UDP, then TCP when truncated) and answers 200 with
 *   the reply in wire format, or 502 with `devbox-error`.
 * `POST /v1/accept`: inbound traffic. The sidecar keeps a pool of pending accept requests. When a
 *   connection arrives at one of the agent's intercept ports, the agent answers one pending request
 *   200 with the headers of {@link InboundInfo} (`devbox-client-address`, `devbox-client-port`,
 *   `devbox-intercept-port`, `devbox-app-port`) and joins the connection to that stream exactly as
 *   `/v1/tcp` does. The sidecar opens a replacement at once. With `devbox-accept-confirm: 1` on the
 *   accept request (sent only to agents whose hello lists the `accept-confirm` feature), the sidecar's
 *   first byte on the stream is not payload but its local app's answer: 0x01 connected, 0x00 refused
 *   (then END_STREAM). Until it arrives the agent keeps a copy of what the client sent (at most
 *   {@link ACCEPT_REPLAY_MAX} bytes); on 0x00 it replays that copy to the app in the pod, so a client
 *   never meets a local app that is down. Each accept request carries
 *   `devbox-accept-generation: <n>`, a number the sidecar raises each time it starts accepting. The
 *   control message `{"type":"accept-stop","generation":n}` tells the agent to stop routing to this
 *   session; it answers 503 to accept requests of generation n or lower that arrive afterwards (a
 *   HEADERS frame may overtake the control DATA frame sent before it).
 * `GET /v1/files?path=/abs/path`: a tar stream (ustar/pax) of the directory or file at `path` in the
 *   agent's file system; 404 when absent. An error mid-way resets the stream.
 *
 * How a stream closes
 * -------------------
 * Orderly: each side sends END_STREAM when its TCP peer sent FIN (or its UDP flow / body is done);
 * the stream closes once both have. Abortive: RST_STREAM with a non-zero code, sent without a
 * preceding END_STREAM (`abortStream()`); the receiver resets its TCP socket. Because
 * `Http2Stream.close(code)` emits END_STREAM just before RST_STREAM, a receiver waits one event-loop
 * turn after END_STREAM before turning it into a FIN (`joinStreams()`). A refused open is a non-200
 * answer, never a reset.
 *
 * Control messages
 * ----------------
 * JSON objects with a string `type`, one per line, each line at most {@link CONTROL_LINE_MAX} bytes.
 * A line that is not such an object closes the session. Unknown types are ignored, so either side may
 * add messages without a version bump. Defined: `session-proof` (sidecar → agent, first), `hello`
 * (agent → sidecar, first), `stats-request` / `stats` (matched by `id`), `accept-stop` (sidecar →
 * agent), and `share` / `share-revoke` (sidecar → agent, `share.ts`): share links the agent applies
 * on its intercept ports for as long as the session that sent them lives (agents whose hello lists
 * the `shares` feature).
 *
 * Liveness
 * --------
 * The agent pings every {@link AGENT_PING_INTERVAL_MS}. It stops routing inbound connections to a
 * session from which it has heard nothing (no byte, no ping ack) for {@link AGENT_SUSPECT_AFTER_MS}
 * and destroys it after `DEVBOX_SESSION_TIMEOUT_MS`. Intercepted traffic then goes to the app in the
 * pod. The sidecar pings too and treats a missing ack as a dead tunnel.
 *
 * History
 * -------
 * 1: first version.
 * 2: the sidecar no longer sends the token (`devbox-token`); both sides prove it with nonces and
 *    HMAC, the agent first.
 */
import type { ShareMessage, ShareRevokeMessage } from './share.js';

export const PROTOCOL_VERSION = 2;

/** Request paths, one per stream kind. */
export const PATHS = {
  session: '/v1/session',
  tcp: '/v1/tcp',
  udp: '/v1/udp',
  dns: '/v1/dns',
  accept: '/v1/accept',
  files: '/v1/files',
} as const;

/** Header names (HTTP/2 requires lower case). */
export const HEADERS = {
  protocol: 'devbox-protocol',
  sidecarNonce: 'devbox-sidecar-nonce',
  agentNonce: 'devbox-agent-nonce',
  agentProof: 'devbox-agent-proof',
  target: 'devbox-target',
  idleMs: 'devbox-idle-ms',
  error: 'devbox-error',
  errorCode: 'devbox-error-code',
  clientAddress: 'devbox-client-address',
  clientPort: 'devbox-client-port',
  interceptPort: 'devbox-intercept-port',
  appPort: 'devbox-app-port',
  acceptGeneration: 'devbox-accept-generation',
  acceptConfirm: 'devbox-accept-confirm',
  sessionId: 'devbox-session-id',
} as const;

/** Features an agent lists in its hello; a sidecar uses one only when the agent lists it. */
export const AGENT_FEATURES = ['accept-confirm', 'shares'] as const;
export type AgentFeature = (typeof AGENT_FEATURES)[number];

/** The first byte of a confirmed accept stream: the sidecar's local app took the connection, or refused it. */
export const ACCEPT_CONNECTED = 0x01;
export const ACCEPT_REFUSED = 0x00;
/** What an agent keeps of a client's bytes until the sidecar confirms, to replay to the pod's app. */
export const ACCEPT_REPLAY_MAX = 256 * 1024;

/**
 * HTTP/2 settings used by both ends. A 4 MiB stream window carries ~1.6 Gbit/s over a 20 ms path
 * (one stream measured 5 Gbit/s on loopback; 1–16 MiB made no difference there); it is also the most
 * one stalled reader can make its peer buffer.
 */
export const H2_SETTINGS = {
  initialWindowSize: 4 * 1024 * 1024,
  maxFrameSize: 64 * 1024,
  enablePush: false,
  /** Bounds what one peer can make the other hold; far above any real use. */
  maxConcurrentStreams: 16_384,
} as const;

/** Connection-level receive window, applied with `session.setLocalWindowSize()` by both ends. */
export const H2_CONNECTION_WINDOW = 32 * 1024 * 1024;

/** `maxSessionMemory` (MB) for both ends: outbound data buffered by nghttp2 counts against it. */
export const H2_MAX_SESSION_MEMORY_MB = 256;

/** Longest control line accepted, newline excluded. */
export const CONTROL_LINE_MAX = 64 * 1024;

/** Largest DNS message carried by `/v1/dns` (the TCP length prefix is 16 bits). */
export const DNS_MESSAGE_MAX = 65535;

export const UDP_IDLE_DEFAULT_MS = 60_000;
export const UDP_IDLE_MIN_MS = 1_000;
export const UDP_IDLE_MAX_MS = 600_000;

export const AGENT_PING_INTERVAL_MS = 500;
export const AGENT_SUSPECT_AFTER_MS = 1_500;

/** Addresses of an inbound connection handed to the sidecar on `/v1/accept`. */
export interface InboundInfo {
  /** Address of the in-cluster client, as the agent saw it. */
  clientAddress: string;
  clientPort: number;
  /** The agent port the connection arrived on (the Service's targetPort). */
  interceptPort: number;
  /** The app port this intercept stands for; the sidecar connects to 127.0.0.1:<appPort>. */
  appPort: number;
}

/** One intercept as configured on the agent. */
export interface InterceptSpec {
  listenPort: number;
  appPort: number;
}

/** The agent's first control message. */
export interface HelloMessage {
  type: 'hello';
  protocol: number;
  /** Pod hostname. */
  hostname: string;
  /** Node.js version of the agent. */
  node: string;
  intercepts: InterceptSpec[];
  /** Optional behaviours this agent supports (absent: none). */
  features?: string[];
  /**
   * The API server's Service address as the pod's env names it (KUBERNETES_SERVICE_HOST and
   * _PORT, set by the kubelet); absent when the pod has none. A developer's Role may not read the
   * `kubernetes` Service of `default`; the pod always knows it.
   */
  kubernetesService?: { host: string; port: number };
}

/** Counters reported by the agent. */
export interface AgentStats {
  uptimeMs: number;
  sessions: number;
  /** Streams open now, by kind. */
  open: { tcp: number; udp: number; dns: number; files: number; inbound: number; acceptPending: number };
  /** Totals since start. */
  totals: {
    tcpOpened: number;
    tcpFailed: number;
    udpFlows: number;
    dnsQueries: number;
    dnsFailures: number;
    intercepted: number;
    passedThrough: number;
    /** Passed-through connections closed at a quiet moment so that their clients reconnect to a session. */
    handedOver: number;
    /** Intercepted connections a session's local app refused, served by the app in the pod instead. */
    localRefused: number;
    queueOverflows: number;
    protocolErrors: number;
    /** Requests on ports with filtered or mirror sessions that no session took: served by the pod's app. */
    toApp?: number;
    /** Connections on such ports that were not HTTP: passed through to the app untouched. */
    notHttp?: number;
  };
  /** Inbound connections now waiting for an accept stream. */
  queued: number;
  /** Per open session, keyed by the sidecar's `devbox-session-id` (else `#<agent's session number>`). */
  bySession?: Record<string, SessionStats>;
}

/** Request counters of one session. */
export interface SessionStats {
  mode: 'global' | 'filtered' | 'mirror';
  /** The filter as `describeRoute` prints it (the personal key masked). */
  filter: string;
  /** Requests (HTTP/1 requests or HTTP/2 streams) sent to the session. */
  routed: number;
  /** Copies sent to a mirror session. */
  mirrored: number;
  /** Copies not sent because the mirror session's queue was full or its copy too large. */
  dropped: number;
}

export interface StatsRequestMessage {
  type: 'stats-request';
  id: number;
}

export interface StatsMessage {
  type: 'stats';
  id: number;
  stats: AgentStats;
}

export interface AcceptStopMessage {
  type: 'accept-stop';
  generation: number;
}

/** The sidecar's proof of the token, sent once the agent has proved itself (see "Sessions"). */
export interface SessionProofMessage {
  type: 'session-proof';
  proof: string;
}

export type ControlMessage =
  | SessionProofMessage
  | HelloMessage
  | StatsRequestMessage
  | StatsMessage
  | AcceptStopMessage
  | ShareMessage
  | ShareRevokeMessage;

/** A host and port as carried in `devbox-target`. */
export interface Target {
  host: string;
  port: number;
}

/** `host:port`, with IPv6 addresses in brackets. */
export function formatTarget(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Parses `host:port` or `[v6]:port`; undefined when malformed. */
export function parseTarget(value: string | undefined): Target | undefined {
  if (!value || value.length > 300) return undefined;
  let host: string;
  let portText: string;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0 || value[close + 1] !== ':') return undefined;
    host = value.slice(1, close);
    portText = value.slice(close + 2);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon <= 0 || value.indexOf(':') !== colon) return undefined;
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port < 1 || port > 65535 || host.length === 0 || /[\s/]/.test(host)) return undefined;
  return { host, port };
}

/** Reads an inbound-info header set; undefined when a field is missing or malformed. */
export function parseInboundInfo(
  headers: Record<string, string | string[] | undefined>,
): InboundInfo | undefined {
  const text = (name: string) => {
    const v = headers[name];
    return typeof v === 'string' ? v : undefined;
  };
  const port = (name: string) => {
    const v = text(name);
    const n = v !== undefined && /^\d{1,5}$/.test(v) ? Number(v) : 0;
    return n >= 1 && n <= 65535 ? n : undefined;
  };
  const clientAddress = text(HEADERS.clientAddress);
  const clientPort = port(HEADERS.clientPort);
  const interceptPort = port(HEADERS.interceptPort);
  const appPort = port(HEADERS.appPort);
  if (
    clientAddress === undefined ||
    clientPort === undefined ||
    interceptPort === undefined ||
    appPort === undefined
  ) {
    return undefined;
  }
  return { clientAddress, clientPort, interceptPort, appPort };
}

/** Header set for an inbound-info answer. */
export function inboundInfoHeaders(info: InboundInfo): Record<string, string> {
  return {
    [HEADERS.clientAddress]: info.clientAddress,
    [HEADERS.clientPort]: String(info.clientPort),
    [HEADERS.interceptPort]: String(info.interceptPort),
    [HEADERS.appPort]: String(info.appPort),
  };
}
