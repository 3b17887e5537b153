import type { ClientRequest, IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DevboxError, errorText } from '../util/errors.js';
import { ERROR_TEXT_MAX, PortForwardDuplex } from './port-forward-duplex.js';
import {
  controlStreamId,
  dataFrameHeader,
  pingFrame,
  rstStatusText,
  SPDY_FRAME_PAYLOAD_MAX,
  SpdyControl,
  SpdyDecoder,
  type SpdyEvent,
  SpdyHeaderEncoder,
  synStreamFrame,
} from './spdy.js';
import {
  HandshakeRefused,
  openWebSocketBytes,
  type UpgradeTarget,
  upgradeRequest,
} from './websocket-bytes.js';

/**
 * Pod port-forward over SPDY/3.1 (`X-Stream-Protocol-Version: portforward.k8s.io`), the protocol
 * `kubectl port-forward` used for years. After the upgrade the client opens two streams per port
 * and request id: an error stream (the server writes a message there when it cannot reach the pod
 * port) and a data stream. Unlike the WebSocket protocol the container runtime neither unmasks nor
 * reassembles every message, which roughly doubles what it can carry towards the pod.
 *
 * The same connection can also travel inside WebSocket binary messages (subprotocol
 * `SPDY/3.1+portforward.k8s.io`, Kubernetes 1.30+): the API server unwraps it and speaks SPDY to
 * the kubelet, so where proxies pass only WebSockets the runtime still takes its cheap path.
 */
export const SPDY_UPGRADE = 'SPDY/3.1';
export const PORT_FORWARD_PROTOCOL = 'portforward.k8s.io';
/** The WebSocket subprotocol that carries a SPDY port-forward connection. */
export const SPDY_TUNNEL_SUBPROTOCOL = `${SPDY_UPGRADE}+${PORT_FORWARD_PROTOCOL}`;

const ERROR_STREAM = 1;
const DATA_STREAM = 3;
/** Outbound bytes queued in the socket before writes wait for `drain`. */
const WRITE_HIGH_WATER = 1024 * 1024;

/** What {@link openSpdyPortForward} needs. */
export interface SpdyPortForwardOptions extends UpgradeTarget {
  port: number;
  label: string;
  keepaliveMs: number;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** A non-101 answer to the upgrade: its status and the Status message, for the caller to explain. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
  ) {
    super(`upgrade refused with HTTP ${status}${detail ? ` (${detail})` : ''}`);
  }
}

/**
 * A Duplex over the data stream of an open SPDY port-forward: backpressure both ways (socket
 * pause/resume and `drain`), error-stream text and resets surface as errors, the end of the
 * writable side sends FIN and ends the connection, a FIN from the server ends the readable side.
 */
export class SpdyPortForwardStream extends PortForwardDuplex {
  private readonly decoder = new SpdyDecoder();
  private errorText = '';
  private nextPing = 1;
  private readonly replied = new Set<number>();
  private isOpen = false;
  private errorFinished = false;
  /** Set from the opening until the first read; events decoded meanwhile wait in `backlog`. */
  private holding = false;
  private backlog: SpdyEvent[] = [];
  private dataFinished = false;

  /** @internal use {@link openSpdyPortForward} */
  constructor(
    private readonly socket: Duplex,
    private readonly label: string,
    keepaliveMs: number,
  ) {
    super({ allowHalfOpen: false, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    socket.on('close', () => this.onSocketClose());
    socket.on('error', (err) =>
      this.destroy(new DevboxError('TUNNEL', `${label}: ${errorText(err)}`, { cause: err })),
    );
    this.startKeepalive(
      keepaliveMs,
      {
        ping: () => {
          socket.write(pingFrame(this.nextPing));
          this.nextPing = (this.nextPing + 2) >>> 0 || 1;
        },
        paused: () => socket.isPaused(),
      },
      `${label}: no answer to a ping within ${keepaliveMs} ms`,
    );
  }

  /**
   * Opens the error and data streams for `port`; emits `spdy-open` once the server replied to both.
   * Reading starts only when the consumer reads (like a paused socket), except during the opening.
   */
  open(port: number, head: Buffer): void {
    const headers = new SpdyHeaderEncoder();
    const streamHeaders = (type: string) => ({ streamtype: type, port: String(port), requestid: '0' });
    this.socket.cork();
    this.socket.write(synStreamFrame(ERROR_STREAM, headers.encode(streamHeaders('error'))));
    this.socket.write(synStreamFrame(DATA_STREAM, headers.encode(streamHeaders('data'))));
    this.socket.uncork();
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    if (head.length > 0) this.receive(head);
  }

  private receive(chunk: Buffer): void {
    if (this.destroyed) return;
    this.heardFromServer();
    let events: SpdyEvent[];
    try {
      events = this.decoder.push(chunk);
    } catch (err) {
      this.destroy(new DevboxError('PROTOCOL', `${this.label}: ${errorText(err)}`, { cause: err }));
      return;
    }
    for (let i = 0; i < events.length; i++) {
      if (this.destroyed) return;
      if (this.holding) {
        this.backlog.push(...events.slice(i));
        return;
      }
      this.onEvent(events[i]!);
    }
  }

  private onEvent(event: SpdyEvent): void {
    if (event.kind === 'data') {
      if (event.streamId === DATA_STREAM) {
        if (!this.push(event.data)) this.socket.pause();
      } else if (event.streamId === ERROR_STREAM && this.errorText.length < ERROR_TEXT_MAX) {
        this.errorText += event.data.toString('utf8');
      }
      return;
    }
    if (event.kind === 'fin') {
      // The server closes the error stream, then the data stream, but their frames may cross: the
      // data stream's end only counts once the error stream has ended without a message.
      if (event.streamId === ERROR_STREAM) this.errorFinished = true;
      if (event.streamId === DATA_STREAM) this.dataFinished = true;
      if (this.errorFinished && this.errorText.trim()) {
        this.failWithServerText(this.label, this.errorText);
      } else if (this.errorFinished && this.dataFinished) {
        this.push(null);
      }
      return;
    }
    switch (event.type) {
      case SpdyControl.synReply: {
        this.replied.add(controlStreamId(event.payload));
        if (!this.isOpen && this.replied.has(ERROR_STREAM) && this.replied.has(DATA_STREAM)) {
          this.isOpen = true;
          // We send nothing on the error stream.
          this.socket.write(dataFrameHeader(ERROR_STREAM, 0, true));
          // Like a paused socket: nothing more (data, or an error) until the consumer reads.
          this.holding = true;
          this.socket.pause();
          this.emit('spdy-open');
        }
        return;
      }
      case SpdyControl.rstStream: {
        const id = controlStreamId(event.payload);
        if (id === DATA_STREAM || id === ERROR_STREAM) {
          this.destroy(
            new DevboxError(
              'TUNNEL',
              `${this.label}: the server reset the stream (${rstStatusText(event.payload)})`,
            ),
          );
        }
        return;
      }
      case SpdyControl.ping: {
        // Even ids are the server's: answer them. Odd ids answer ours.
        if (event.payload.length >= 4 && (event.payload.readUInt32BE(0) & 1) === 0) {
          this.socket.write(pingFrame(event.payload.readUInt32BE(0)));
        }
        return;
      }
      case SpdyControl.goAway:
        this.push(null);
        return;
      default:
        // SETTINGS, HEADERS and WINDOW_UPDATE carry nothing we need.
        return;
    }
  }

  private onSocketClose(): void {
    this.stopKeepalive();
    if (this.destroyed) return;
    if (this.errorText.trim()) {
      this.failWithServerText(this.label, this.errorText);
      return;
    }
    // A close without FIN: treat like the WebSocket transport treats a normal close.
    this.push(null);
  }

  override _read(): void {
    if (this.holding) {
      this.holding = false;
      const backlog = this.backlog;
      this.backlog = [];
      for (const event of backlog) {
        if (this.destroyed) return;
        this.onEvent(event);
      }
    }
    if (this.socket.isPaused()) this.socket.resume();
  }

  protected send(chunks: Buffer[], callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed || !this.socket.writable) {
      callback(new DevboxError('TUNNEL', `${this.label}: write after the connection closed`));
      return;
    }
    let size = 0;
    for (const c of chunks) size += c.length;
    this.socket.cork();
    let frameLeft = 0;
    for (const c of chunks) {
      let offset = 0;
      while (offset < c.length) {
        if (frameLeft === 0) {
          frameLeft = Math.min(size, SPDY_FRAME_PAYLOAD_MAX);
          size -= frameLeft;
          this.socket.write(dataFrameHeader(DATA_STREAM, frameLeft));
        }
        const take = Math.min(frameLeft, c.length - offset);
        this.socket.write(offset === 0 && take === c.length ? c : c.subarray(offset, offset + take));
        offset += take;
        frameLeft -= take;
      }
    }
    this.socket.uncork();
    if (this.socket.writableLength < WRITE_HIGH_WATER) callback();
    else this.socket.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.stopKeepalive();
    if (!this.socket.destroyed) this.socket.end(dataFrameHeader(DATA_STREAM, 0, true));
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.stopKeepalive();
    this.socket.destroy();
    callback(err);
  }
}

/** How the SPDY connection is made: an HTTP upgrade, or inside a WebSocket (Kubernetes 1.30+). */
export type SpdyCarrier = 'upgrade' | 'websocket';

/**
 * Connects (see {@link SpdyCarrier}), opens the error and data streams for `port` and resolves once
 * the server has replied to both. Rejects with {@link UpgradeRefused} when the server answers the
 * upgrade with another status or the streams do not open after it, with a TUNNEL DevboxError when
 * there is no answer within `timeoutMs` or on abort, and with the connection's own error when it
 * cannot be made.
 */
export function openSpdyPortForward(
  opts: SpdyPortForwardOptions,
  carrier: SpdyCarrier = 'upgrade',
): Promise<SpdyPortForwardStream> {
  const { label } = opts;
  return new Promise((resolve, reject) => {
    let settled = false;
    let connection: Duplex | undefined;
    const dialed = carrier === 'upgrade' ? dialUpgrade(opts) : dialWebSocket(opts);
    const settle = (err: Error | undefined, stream?: SpdyPortForwardStream) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err) {
        dialed.request.destroy();
        connection?.destroy();
        reject(err);
      } else {
        resolve(stream!);
      }
    };
    const onAbort = () => settle(new DevboxError('TUNNEL', `${label}: aborted`));
    const timer = setTimeout(
      () =>
        settle(new DevboxError('TUNNEL', `${label}: no answer to the upgrade within ${opts.timeoutMs} ms`)),
      opts.timeoutMs,
    );
    if (opts.signal?.aborted) {
      onAbort();
      return;
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    dialed.connected.then(
      ({ stream: connected, head }) => {
        connection = connected;
        if (settled) {
          connected.destroy();
          return;
        }
        startSpdyPortForward(connected, head, opts).then(
          (stream) => settle(undefined, stream),
          (err: Error) => settle(err),
        );
      },
      (err: Error) => settle(err),
    );
  });
}

interface Dialed {
  request: ClientRequest;
  connected: Promise<{ stream: Duplex; head: Buffer }>;
}

/** SPDY on the connection itself, after `Upgrade: SPDY/3.1`. */
function dialUpgrade(opts: SpdyPortForwardOptions): Dialed {
  const request = upgradeRequest(opts, 'POST', {
    Connection: 'Upgrade',
    Upgrade: SPDY_UPGRADE,
    'X-Stream-Protocol-Version': PORT_FORWARD_PROTOCOL,
  });
  const connected = new Promise<{ stream: Duplex; head: Buffer }>((resolve, reject) => {
    request.on('error', reject);
    request.on('response', (res: IncomingMessage) => {
      readStatusMessage(res).then((detail) => reject(new UpgradeRefused(res.statusCode ?? 0, detail)));
    });
    request.on('upgrade', (res: IncomingMessage, upgraded: Socket, head: Buffer) => {
      const protocol = String(res.headers['x-stream-protocol-version'] ?? '');
      if (protocol !== PORT_FORWARD_PROTOCOL) {
        upgraded.destroy();
        reject(new UpgradeRefused(res.statusCode ?? 101, `the server chose protocol "${protocol}"`));
        return;
      }
      upgraded.setNoDelay(true);
      resolve({ stream: upgraded, head });
    });
    request.end();
  });
  return { request, connected };
}

/** SPDY in the binary messages of a WebSocket, which the API server unwraps. */
function dialWebSocket(opts: SpdyPortForwardOptions): Dialed {
  const { request, opened } = openWebSocketBytes({
    url: opts.url,
    headers: opts.headers,
    tls: opts.tls,
    subprotocol: SPDY_TUNNEL_SUBPROTOCOL,
  });
  const connected = opened.then(
    (stream) => ({ stream: stream as Duplex, head: Buffer.alloc(0) }),
    async (err: Error) => {
      if (!(err instanceof HandshakeRefused)) throw err;
      throw new UpgradeRefused(
        err.status,
        err.response ? await readStatusMessage(err.response) : err.message,
      );
    },
  );
  return { request, connected };
}

/**
 * Opens the error and data streams for `opts.port` over an established connection and resolves once
 * the server replied to both. When they do not come up, something between us and the runtime does
 * not speak SPDY: that is reported as a refusal (101), so that `auto` moves on.
 */
function startSpdyPortForward(
  connection: Duplex,
  head: Buffer,
  opts: Pick<SpdyPortForwardOptions, 'port' | 'label' | 'keepaliveMs' | 'signal'>,
): Promise<SpdyPortForwardStream> {
  return new Promise((resolve, reject) => {
    const stream = new SpdyPortForwardStream(connection, opts.label, opts.keepaliveMs);
    const onEarlyError = (err: Error) => reject(new UpgradeRefused(101, errorText(err)));
    const onEarlyClose = () => reject(new UpgradeRefused(101, 'closed before the streams opened'));
    stream.once('spdy-open', () => {
      stream.off('error', onEarlyError);
      stream.off('close', onEarlyClose);
      stream.destroyOnAbort(opts.signal, opts.label);
      resolve(stream);
    });
    stream.once('error', onEarlyError);
    stream.once('close', onEarlyClose);
    stream.open(opts.port, head);
  });
}

/** Reads at most 64 KiB of an error response and extracts a Kubernetes Status message. */
export function readStatusMessage(res: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        const status = JSON.parse(text) as { message?: unknown };
        if (typeof status.message === 'string') return resolve(status.message);
      } catch {
        // not a Status object
      }
      resolve(text.trim().slice(0, 500));
    };
    res.on('data', (chunk: Buffer) => {
      if (size < 65536) chunks.push(chunk);
      size += chunk.length;
    });
    res.on('end', finish);
    res.on('error', finish);
    res.on('close', finish);
  });
}
