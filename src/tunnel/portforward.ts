import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import WebSocket from 'ws';
import { DevboxError, errorText } from '../util/errors.js';
import { verifyServerAs } from '../util/tls-name.js';
import { ERROR_TEXT_MAX, PortForwardDuplex } from './port-forward-duplex.js';
import { openSpdyPortForward, readStatusMessage, UpgradeRefused } from './portforward-spdy.js';
import { PORT_FORWARD_TRANSPORTS, type PortForwardTransport } from './portforward-transports.js';

/**
 * Pod port-forward over WebSocket, subprotocol `v4.channel.k8s.io`.
 *
 * Every binary message starts with a channel byte. For the i-th requested port, channel 2i carries
 * data and 2i+1 carries error text. The first message the server sends on each channel starts with
 * the port as a 2-byte little-endian integer, which is stripped. The client sends data frames on the
 * data channel only. The server closes the WebSocket when the pod's connection closes; there is no
 * half-close.
 */
export const PORT_FORWARD_SUBPROTOCOL = 'v4.channel.k8s.io';

/** Options of {@link openPortForward}. */
export interface PortForwardOptions {
  /** API server base URL, e.g. `https://host.docker.internal:6443`. */
  server: string;
  /** Bearer token. */
  token?: string;
  /** PEM CA bundle that signed the API server's certificate. */
  ca?: string | Buffer;
  /** Client certificate and key (kubeconfigs with client-certificate auth). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** TLS server name to verify, when `server` is a rewritten address (host gateway). */
  servername?: string;
  /** Skip TLS verification (only for kubeconfigs that ask for it). */
  insecureSkipTlsVerify?: boolean;
  namespace: string;
  pod: string;
  port: number;
  /** WebSocket ping interval; default 30 s, 0 disables. A missing pong by the next ping closes the stream. */
  keepaliveMs?: number;
  /** Upgrade timeout; default 15 s. */
  timeoutMs?: number;
  /** Aborting fails the open, or destroys the stream once open. */
  signal?: AbortSignal;
  /**
   * `spdy` (SPDY/3.1, what the container runtime carries fastest), `spdy-websocket` (the same inside
   * a WebSocket, for proxies that pass only WebSockets; Kubernetes 1.30+), `websocket`
   * (v4.channel.k8s.io, any version) or `auto` (default): the first of these the server takes,
   * remembered for it when SPDY was refused.
   */
  transport?: PortForwardTransport;
}

export { PORT_FORWARD_TRANSPORTS, type PortForwardTransport };

/** API servers (by URL) that refused the SPDY upgrade, with the transport that worked instead. */
const fallbackFor = new Map<string, Exclude<PortForwardTransport, 'auto' | 'spdy'>>();

/** One decoded port-forward message. */
export type PortForwardFrame =
  | { kind: 'data'; data: Buffer }
  | { kind: 'error'; text: Buffer }
  /** A message that only carried the port prefix, or an empty data frame. */
  | { kind: 'none' };

/**
 * Decodes the server's messages of one forwarded port. Throws a PROTOCOL DevboxError on an empty
 * message, an unknown channel, or a missing or wrong port prefix. Keeps no buffer.
 */
export class PortForwardDecoder {
  private readonly seenPort = [false, false];

  constructor(
    private readonly port: number,
    private readonly portIndex = 0,
  ) {}

  decode(message: Buffer): PortForwardFrame {
    if (message.length === 0) throw new DevboxError('PROTOCOL', 'port-forward: empty message');
    const channel = message[0]! - this.portIndex * 2;
    if (channel !== 0 && channel !== 1) {
      throw new DevboxError('PROTOCOL', `port-forward: unexpected channel ${message[0]}`);
    }
    let payload = message.subarray(1);
    if (!this.seenPort[channel]) {
      if (payload.length < 2) throw new DevboxError('PROTOCOL', 'port-forward: truncated port prefix');
      const port = payload.readUInt16LE(0);
      if (port !== this.port) {
        throw new DevboxError(
          'PROTOCOL',
          `port-forward: server announced port ${port}, expected ${this.port}`,
        );
      }
      this.seenPort[channel] = true;
      payload = payload.subarray(2);
    }
    if (payload.length === 0) return { kind: 'none' };
    return channel === 0 ? { kind: 'data', data: payload } : { kind: 'error', text: payload };
  }
}

/** Outbound bytes queued in ws and its socket before writes wait for the network. */
const WRITE_HIGH_WATER = 1024 * 1024;
/** Largest WebSocket message received; h2 frames written by the agent are far smaller. */
const MAX_MESSAGE = 16 * 1024 * 1024;

/**
 * A Duplex over an open port-forward WebSocket: backpressure both ways, error-channel text and
 * abnormal closes surface as errors, end of the writable side closes the WebSocket, a WebSocket
 * close ends the readable side. Like a paused socket, it reads nothing from the network (and so
 * reports no remote error) until it is read from.
 */
export class PortForwardStream extends PortForwardDuplex {
  private readonly ws: WebSocket;
  private readonly decoder: PortForwardDecoder;
  private readonly label: string;
  private readonly channelByte: number;

  /** @internal use {@link openPortForward} */
  constructor(ws: WebSocket, port: number, label: string, keepaliveMs: number) {
    super({ allowHalfOpen: false, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    this.ws = ws;
    this.decoder = new PortForwardDecoder(port);
    this.label = label;
    this.channelByte = 0;
    // Nothing is read until the consumer reads, so that no data or error is emitted before the
    // caller of openPortForward has attached its listeners.
    ws.pause();
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => this.onMessage(toBuffer(data)));
    ws.on('close', (code: number, reason: Buffer) => this.onClose(code, reason.toString('utf8')));
    ws.on('error', (err: Error) =>
      this.destroy(new DevboxError('TUNNEL', `${label}: ${errorText(err)}`, { cause: err })),
    );
    ws.on('pong', () => this.heardFromServer());
    this.startKeepalive(
      keepaliveMs,
      {
        ping: () => {
          try {
            ws.ping();
          } catch {
            // The close handler reports a closing socket.
          }
        },
        paused: () => ws.isPaused,
      },
      `${label}: no WebSocket pong within ${keepaliveMs} ms`,
    );
  }

  private onMessage(message: Buffer): void {
    this.heardFromServer();
    if (this.destroyed) return;
    let frame: PortForwardFrame;
    try {
      frame = this.decoder.decode(message);
    } catch (err) {
      this.destroy(new DevboxError('PROTOCOL', `${this.label}: ${errorText(err)}`, { cause: err }));
      return;
    }
    if (frame.kind === 'data') {
      if (!this.push(frame.data)) this.ws.pause();
    } else if (frame.kind === 'error') {
      this.failWithServerText(this.label, frame.text.subarray(0, ERROR_TEXT_MAX).toString('utf8'));
    }
  }

  private onClose(code: number, reason: string): void {
    this.stopKeepalive();
    if (this.destroyed) return;
    if (code === 1000 || code === 1001 || code === 1005) {
      this.push(null);
      return;
    }
    this.destroy(
      new DevboxError(
        'TUNNEL',
        `${this.label}: connection closed (code ${code}${reason ? `, ${reason}` : ''})`,
      ),
    );
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  protected send(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      callback(new DevboxError('TUNNEL', `${this.label}: write after the connection closed`));
      return;
    }
    let size = 1;
    for (const c of chunks) size += c.length;
    const frame = Buffer.allocUnsafe(size);
    frame[0] = this.channelByte;
    let offset = 1;
    for (const c of chunks) {
      frame.set(c, offset);
      offset += c.length;
    }
    let called = false;
    const done = (err?: Error | null) => {
      if (called) return;
      called = true;
      callback(err ? new DevboxError('TUNNEL', `${this.label}: ${errorText(err)}`, { cause: err }) : null);
    };
    this.ws.send(frame, { binary: true }, (err) => done(err));
    // Below the mark, take more at once; above it, the next write waits for this frame to reach the socket.
    if (this.ws.bufferedAmount < WRITE_HIGH_WATER) done();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.stopKeepalive();
    // The closing handshake needs the peer's close frame to be read.
    this.ws.resume();
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)
      this.ws.close(1000);
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.stopKeepalive();
    if (this.ws.readyState === WebSocket.OPEN) {
      if (err) this.ws.terminate();
      else this.ws.close(1000);
    } else if (this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    }
    callback(err);
  }
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** The port-forward URL for one pod port. */
export function portForwardUrl(server: string, namespace: string, pod: string, port: number): string {
  const base = new URL(server);
  base.protocol = base.protocol === 'http:' ? 'ws:' : 'wss:';
  const prefix = base.pathname.replace(/\/+$/, '');
  base.pathname = `${prefix}/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/portforward`;
  base.search = `?ports=${port}`;
  return base.toString();
}

/**
 * Opens a port-forward to `pod:port` and resolves with a Duplex carrying the bytes, once the
 * upgrade has succeeded (see {@link PortForwardOptions.transport}). Upgrade failures are
 * DevboxErrors: FORBIDDEN for 401 (token) and 403 (naming the RBAC verbs needed), NOT_FOUND for
 * 404, TUNNEL otherwise.
 */
export async function openPortForward(opts: PortForwardOptions): Promise<Duplex> {
  const transport = opts.transport ?? 'auto';
  const label = `port-forward ${opts.namespace}/${opts.pod}:${opts.port}`;
  const known = fallbackFor.get(opts.server);
  const candidates =
    transport !== 'auto' ? [transport] : known ? [known] : (['spdy', 'spdy-websocket', 'websocket'] as const);
  for (const [i, candidate] of candidates.entries()) {
    try {
      const stream = await openWith(candidate, opts, label);
      // Remembered only once another transport works: a refusal about the pod (not running yet)
      // would fail every way and must not cost this server SPDY for good.
      if (transport === 'auto' && candidate !== 'spdy') fallbackFor.set(opts.server, candidate);
      return stream;
    } catch (err) {
      const refused = err instanceof UpgradeRefused && ![401, 403, 404].includes(err.status);
      if (!refused || i === candidates.length - 1) throw explain(err, opts, label);
    }
  }
  throw new DevboxError('INTERNAL', `${label}: no transport to try`);
}

function openWith(
  transport: Exclude<PortForwardTransport, 'auto'>,
  opts: PortForwardOptions,
  label: string,
): Promise<Duplex> {
  if (transport === 'websocket') return openWebSocketPortForward(opts);
  return openSpdyPortForward(
    {
      url: new URL(portForwardUrl(opts.server, opts.namespace, opts.pod, opts.port).replace(/^ws/, 'http')),
      headers: opts.token ? { Authorization: `Bearer ${opts.token}` } : {},
      tls: {
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        rejectUnauthorized: !opts.insecureSkipTlsVerify,
        ...verifyServerAs(opts.servername),
      },
      port: opts.port,
      label,
      keepaliveMs: opts.keepaliveMs ?? 30_000,
      timeoutMs: opts.timeoutMs ?? 15_000,
      signal: opts.signal,
    },
    transport === 'spdy' ? 'upgrade' : 'websocket',
  );
}

/** Turns refusals and connection failures into DevboxErrors that say what to change. */
function explain(err: unknown, opts: PortForwardOptions, label: string): Error {
  if (err instanceof UpgradeRefused) return upgradeError(err.status, err.detail, opts, label);
  if (err instanceof DevboxError) return err;
  return connectError(err as Error, opts, label);
}

/** The WebSocket (v4.channel.k8s.io) transport of {@link openPortForward}. */
function openWebSocketPortForward(opts: PortForwardOptions): Promise<PortForwardStream> {
  const label = `port-forward ${opts.namespace}/${opts.pod}:${opts.port}`;
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err: Error | undefined, stream?: PortForwardStream) => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(stream!);
    };
    if (opts.signal?.aborted) {
      reject(new DevboxError('TUNNEL', `${label}: aborted`));
      return;
    }
    const headers: Record<string, string> = {};
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    // ws hands TLS options through to tls.connect; its types omit `servername` and type
    // `checkServerIdentity` as its own hook.
    const wsOptions = {
      headers,
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      rejectUnauthorized: !opts.insecureSkipTlsVerify,
      ...verifyServerAs(opts.servername),
      perMessageDeflate: false,
      handshakeTimeout: opts.timeoutMs ?? 15_000,
      maxPayload: MAX_MESSAGE,
      followRedirects: false,
      // The connection is TLS to the API server: masking guards browsers' proxies, not us, and
      // costs a copy of every frame. A zero mask is valid and lets ws skip it.
      generateMask: (mask: Buffer) => {
        mask.fill(0);
      },
    } as WebSocket.ClientOptions;
    const ws = new WebSocket(
      portForwardUrl(opts.server, opts.namespace, opts.pod, opts.port),
      [PORT_FORWARD_SUBPROTOCOL],
      wsOptions,
    );
    const onAbort = () => {
      ws.terminate();
      settle(new DevboxError('TUNNEL', `${label}: aborted`));
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      readStatusMessage(res).then((detail) => {
        settle(upgradeError(res.statusCode ?? 0, detail, opts, label));
        ws.terminate();
      });
    });
    ws.on('error', (err: Error) => settle(connectError(err, opts, label)));
    ws.on('close', () => settle(new DevboxError('TUNNEL', `${label}: closed during the upgrade`)));
    ws.on('open', () => {
      if (ws.protocol !== PORT_FORWARD_SUBPROTOCOL) {
        ws.terminate();
        settle(
          new DevboxError('TUNNEL', `${label}: the API server did not accept ${PORT_FORWARD_SUBPROTOCOL}`),
        );
        return;
      }
      ws.removeAllListeners('error');
      ws.removeAllListeners('close');
      ws.removeAllListeners('unexpected-response');
      const stream = new PortForwardStream(ws, opts.port, label, opts.keepaliveMs ?? 30_000);
      stream.destroyOnAbort(opts.signal, label);
      settle(undefined, stream);
    });
  });
}

function upgradeError(status: number, detail: string, opts: PortForwardOptions, label: string): DevboxError {
  const suffix = detail ? ` (${detail})` : '';
  if (status === 401) {
    return new DevboxError(
      'FORBIDDEN',
      `${label}: the API server rejected the token (401 Unauthorized)${suffix}`,
      {
        hint: 'the token is invalid or expired; run `devbox up` again to mint a fresh one',
      },
    );
  }
  if (status === 403) {
    return new DevboxError(
      'FORBIDDEN',
      `${label}: forbidden (403): the credentials lack verbs create and get on pods/portforward in namespace ${opts.namespace}${suffix}`,
      {
        hint: `grant create and get on pods/portforward in namespace ${opts.namespace} (see templates/ for the Role)`,
      },
    );
  }
  if (status === 404) {
    return new DevboxError(
      'NOT_FOUND',
      `${label}: pod ${opts.pod} not found in namespace ${opts.namespace}${suffix}`,
      {
        hint: 'the pod was replaced or deleted; wait for the new pod and reconnect',
      },
    );
  }
  return new DevboxError('TUNNEL', `${label}: upgrade failed with HTTP ${status}${suffix}`);
}

function connectError(err: Error, opts: PortForwardOptions, label: string): DevboxError {
  const code = (err as { code?: string }).code ?? '';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new DevboxError('TUNNEL', `${label}: the API server certificate does not match the server name`, {
      cause: err,
      hint: `set servername to the name in the API server's certificate${opts.servername ? ` (now ${opts.servername})` : ''}`,
    });
  }
  if (code.startsWith('ERR_TLS') || code.includes('CERT') || code === 'DEPTH_ZERO_SELF_SIGNED_CERT') {
    return new DevboxError('TUNNEL', `${label}: TLS verification failed (${code})`, {
      cause: err,
      hint: 'pass the cluster CA from the kubeconfig',
    });
  }
  return new DevboxError(
    'TUNNEL',
    `${label}: cannot reach the API server at ${opts.server}: ${errorText(err)}`,
    {
      cause: err,
    },
  );
}
