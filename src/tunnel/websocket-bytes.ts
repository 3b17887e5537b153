/**
 * A client WebSocket (RFC 6455) that carries one byte stream in binary messages, for SPDY
 * tunnelled through the API server (subprotocol `SPDY/3.1+portforward.k8s.io`). `ws` cannot
 * ask for that subprotocol: `/` is not a token character, and it refuses it. The byte stream
 * needs little of WebSocket: binary and continuation frames in, binary frames out, ping,
 * pong and close.
 */
import { createHash, randomBytes } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { DevboxError } from '../util/errors.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;
/** Outbound bytes queued in the socket before writes wait for `drain`. */
const WRITE_HIGH_WATER = 1024 * 1024;
/** A zero mask is valid and leaves the payload as it is: TLS already hides it from proxies. */
const ZERO_MASK = Buffer.alloc(4);

/** The Sec-WebSocket-Accept a server must answer to `key` (RFC 6455, 4.2.2). */
export function acceptKey(key: string): string {
  return createHash('sha1')
    .update(key + GUID)
    .digest('base64');
}

/** The header of one client frame (FIN set, masked with zeros) carrying `length` payload bytes. */
export function clientFrameHeader(opcode: number, length: number): Buffer {
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = Buffer.alloc(2 + extra + 4);
  header[0] = 0x80 | opcode;
  if (extra === 0) header[1] = 0x80 | length;
  else if (extra === 2) {
    header[1] = 0x80 | 126;
    header.writeUInt16BE(length, 2);
  } else {
    header[1] = 0x80 | 127;
    header.writeBigUInt64BE(BigInt(length), 2);
  }
  ZERO_MASK.copy(header, 2 + extra);
  return header;
}

export type WebSocketEvent =
  | { kind: 'data'; data: Buffer }
  | { kind: 'ping'; payload: Buffer }
  | { kind: 'pong' }
  | { kind: 'close'; code: number; reason: string };

/**
 * Decodes server frames. Binary payload is passed on as it arrives; control frames (at most 125
 * bytes each) are the only thing held. Anything a server may not send is a PROTOCOL error.
 */
export class WebSocketDecoder {
  private pending: Buffer = Buffer.alloc(0);
  /** Payload bytes of the current data frame still to come. */
  private dataLeft = 0;
  private inMessage = false;

  push(chunk: Buffer): WebSocketEvent[] {
    const events: WebSocketEvent[] = [];
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    this.pending = Buffer.alloc(0);
    for (;;) {
      if (this.dataLeft > 0) {
        if (buf.length === 0) break;
        const take = Math.min(this.dataLeft, buf.length);
        events.push({ kind: 'data', data: buf.subarray(0, take) });
        this.dataLeft -= take;
        buf = buf.subarray(take);
        continue;
      }
      const frame = this.readHeader(buf);
      if (!frame) {
        this.pending = Buffer.from(buf);
        break;
      }
      const { opcode, fin, length, headerLength } = frame;
      if (opcode === OP.binary || opcode === OP.continuation) {
        if ((opcode === OP.continuation) !== this.inMessage)
          throw protocolError(
            opcode === OP.continuation ? 'continuation without a message' : 'a message inside a message',
          );
        this.inMessage = !fin;
        this.dataLeft = length;
        buf = buf.subarray(headerLength);
        continue;
      }
      if (buf.length < headerLength + length) {
        this.pending = Buffer.from(buf);
        break;
      }
      const payload = Buffer.from(buf.subarray(headerLength, headerLength + length));
      buf = buf.subarray(headerLength + length);
      if (opcode === OP.ping) events.push({ kind: 'ping', payload });
      else if (opcode === OP.pong) events.push({ kind: 'pong' });
      else
        events.push({
          kind: 'close',
          code: payload.length >= 2 ? payload.readUInt16BE(0) : 1005,
          reason: payload.subarray(2).toString('utf8'),
        });
    }
    return events;
  }

  private readHeader(
    buf: Buffer,
  ): { opcode: number; fin: boolean; length: number; headerLength: number } | undefined {
    if (buf.length < 2) return undefined;
    const b0 = buf[0]!;
    const b1 = buf[1]!;
    if (b0 & 0x70) throw protocolError('reserved bits set');
    if (b1 & 0x80) throw protocolError('a masked frame from the server');
    const opcode = b0 & 0x0f;
    const fin = (b0 & 0x80) !== 0;
    const control = opcode >= 0x8;
    if (opcode === OP.text) throw protocolError('a text message');
    if (![OP.continuation, OP.binary, OP.close, OP.ping, OP.pong].includes(opcode as never))
      throw protocolError(`unknown opcode ${opcode}`);
    let length = b1 & 0x7f;
    let headerLength = 2;
    if (control && (length > 125 || !fin)) throw protocolError('an oversize or fragmented control frame');
    if (length === 126) {
      if (buf.length < 4) return undefined;
      length = buf.readUInt16BE(2);
      headerLength = 4;
    } else if (length === 127) {
      if (buf.length < 10) return undefined;
      const big = buf.readBigUInt64BE(2);
      if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw protocolError('a frame longer than 2^53 bytes');
      length = Number(big);
      headerLength = 10;
    }
    return { opcode, fin, length, headerLength };
  }
}

function protocolError(what: string): DevboxError {
  return new DevboxError('PROTOCOL', `WebSocket: ${what}`);
}

/**
 * The byte stream of an open WebSocket: writes become binary frames, received binary payload is
 * read back to back. Backpressure both ways; pings are answered; ending sends a close frame.
 * Like a socket, it emits 'close' once the connection is gone and everything received was read.
 */
export class WebSocketByteStream extends Duplex {
  private readonly decoder = new WebSocketDecoder();
  private closeSent = false;

  constructor(
    private readonly socket: Socket,
    head: Buffer,
  ) {
    super({ allowHalfOpen: false, readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => {
      this.push(null);
      if (!this.writableEnded) this.end();
    });
    if (head.length > 0) this.receive(head);
  }

  private receive(chunk: Buffer): void {
    if (this.destroyed) return;
    let events: WebSocketEvent[];
    try {
      events = this.decoder.push(chunk);
    } catch (err) {
      this.destroy(err as Error);
      return;
    }
    for (const event of events) {
      if (event.kind === 'data') {
        if (!this.push(event.data)) this.socket.pause();
      } else if (event.kind === 'ping') {
        this.sendFrame(OP.pong, [event.payload]);
      } else if (event.kind === 'close') {
        this.sendClose(event.code === 1005 ? 1000 : event.code);
        this.socket.end();
        this.push(null);
      }
    }
  }

  private sendFrame(opcode: number, chunks: Buffer[]): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    let size = 0;
    for (const c of chunks) size += c.length;
    this.socket.cork();
    this.socket.write(clientFrameHeader(opcode, size));
    for (const c of chunks) this.socket.write(c);
    this.socket.uncork();
  }

  private sendClose(code: number): void {
    if (this.closeSent) return;
    this.closeSent = true;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this.sendFrame(OP.close, [payload]);
  }

  override _read(): void {
    if (this.socket.isPaused()) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    if (this.socket.destroyed || !this.socket.writable) {
      callback(new DevboxError('TUNNEL', 'write after the WebSocket closed'));
      return;
    }
    this.sendFrame(
      OP.binary,
      chunks.map((c) => c.chunk),
    );
    if (this.socket.writableLength < WRITE_HIGH_WATER) callback();
    else this.socket.once('drain', () => callback());
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.sendClose(1000);
    if (!this.socket.destroyed) this.socket.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }
}

/** An HTTP endpoint to upgrade, with the credentials for it. */
export interface UpgradeTarget {
  /** `https:` or `http:` URL of the endpoint. */
  url: URL;
  headers: Record<string, string>;
  tls: Pick<
    https.RequestOptions,
    'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername' | 'checkServerIdentity'
  >;
}

/** A request to `target` asking to upgrade the connection (`headers` say to what); not sent yet. */
export function upgradeRequest(
  target: UpgradeTarget,
  method: string,
  headers: Record<string, string>,
): http.ClientRequest {
  const secure = target.url.protocol === 'https:';
  const requestOptions: https.RequestOptions = {
    method,
    host: target.url.hostname.replace(/^\[|\]$/g, ''),
    port: target.url.port || (secure ? 443 : 80),
    path: `${target.url.pathname}${target.url.search}`,
    headers: { ...target.headers, ...headers },
    agent: false,
    ...(secure ? target.tls : {}),
  };
  return secure ? https.request(requestOptions) : http.request(requestOptions);
}

/** What {@link openWebSocketBytes} needs. */
export interface WebSocketBytesOptions extends UpgradeTarget {
  subprotocol: string;
}

/** The server answered the handshake with something else than 101 and the subprotocol asked for. */
export class HandshakeRefused extends Error {
  constructor(
    readonly status: number,
    readonly response: IncomingMessage | undefined,
    why: string,
  ) {
    super(why);
  }
}

/**
 * Runs the opening handshake and resolves with the connection's byte stream. Rejects with
 * {@link HandshakeRefused} when the server answers otherwise (its response, when there is one,
 * is left for the caller to read), and with the request's error when it cannot connect.
 * Returns the request too, so that the caller can abort it.
 */
export function openWebSocketBytes(opts: WebSocketBytesOptions): {
  request: http.ClientRequest;
  opened: Promise<WebSocketByteStream>;
} {
  const key = randomBytes(16).toString('base64');
  const request = upgradeRequest(opts, 'GET', {
    Connection: 'Upgrade',
    Upgrade: 'websocket',
    'Sec-WebSocket-Version': '13',
    'Sec-WebSocket-Key': key,
    'Sec-WebSocket-Protocol': opts.subprotocol,
  });
  const opened = new Promise<WebSocketByteStream>((resolve, reject) => {
    request.on('error', reject);
    request.on('response', (res) => reject(new HandshakeRefused(res.statusCode ?? 0, res, 'no upgrade')));
    request.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      const accept = acceptKey(key);
      const protocol = String(res.headers['sec-websocket-protocol'] ?? '');
      if (res.headers['sec-websocket-accept'] !== accept || protocol !== opts.subprotocol) {
        socket.destroy();
        reject(
          new HandshakeRefused(
            101,
            undefined,
            protocol === opts.subprotocol
              ? 'a wrong Sec-WebSocket-Accept'
              : `the server chose subprotocol "${protocol}"`,
          ),
        );
        return;
      }
      resolve(new WebSocketByteStream(socket, head));
    });
    request.end();
  });
  return { request, opened };
}
