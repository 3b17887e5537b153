import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { isAbsolute } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { dialFailure } from '../tunnel/errors.js';
import { encodeFrame, LengthPrefixDecoder } from '../tunnel/framing.js';
import { joinStreams } from '../tunnel/pipe.js';
import {
  DNS_MESSAGE_MAX,
  formatTarget,
  HEADERS,
  parseTarget,
  UDP_IDLE_DEFAULT_MS,
  UDP_IDLE_MAX_MS,
  UDP_IDLE_MIN_MS,
} from '../tunnel/protocol.js';
import { errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { AgentConfig } from './config.js';
import { dialTcp, dialUdp } from './dialer.js';
import type { DnsRelay } from './dns-relay.js';
import { isWithin, packPath } from './files.js';
import type { AgentCounters } from './stats.js';
import { permittedAddress } from './target-policy.js';

/** The code of a files request for a path outside the app's volume mounts. */
export const OUTSIDE_VOLUMES_CODE = 'EOUTSIDEVOLUMES';

/** Handlers of the outbound stream kinds; each resolves once the stream is answered. */
export interface StreamHandlers {
  tcp(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void>;
  udp(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void>;
  dns(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void>;
  files(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void>;
}

/** A single-valued header, or undefined. */
export function headerText(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return typeof v === 'string' ? v : undefined;
}

/** Header values must be visible ASCII; error text may come from anywhere. */
function headerSafe(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?').slice(0, 400);
}

/** Answers a stream with an error status and ends it; no-op on a stream that is already gone. */
export function replyError(stream: ServerHttp2Stream, status: number, code: string, message: string): void {
  if (stream.destroyed || stream.closed || stream.headersSent) {
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CANCEL);
    return;
  }
  try {
    stream.respond(
      { ':status': status, [HEADERS.errorCode]: headerSafe(code), [HEADERS.error]: headerSafe(message) },
      { endStream: true },
    );
  } catch {
    stream.destroy();
  }
}

export interface HandlerContext {
  config: AgentConfig;
  log: Logger;
  counters: AgentCounters;
  dns: DnsRelay;
}

/** The agent's outbound handlers: TCP and UDP dialing, DNS relay, file export. */
export function createHandlers(ctx: HandlerContext): StreamHandlers {
  return {
    tcp: (stream, headers) => handleTcp(ctx, stream, headers),
    udp: (stream, headers) => handleUdp(ctx, stream, headers),
    dns: (stream) => handleDns(ctx, stream),
    files: (stream, headers) => handleFiles(ctx, stream, headers),
  };
}

async function handleTcp(ctx: HandlerContext, stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
  const target = parseTarget(headerText(headers, HEADERS.target));
  if (!target) return replyError(stream, 400, 'EINVAL', `${HEADERS.target} must be host:port`);
  const label = formatTarget(target.host, target.port);
  const cancel = new AbortController();
  const onClose = () => cancel.abort();
  stream.once('close', onClose);
  let socket: Awaited<ReturnType<typeof dialTcp>>;
  try {
    const host = await permittedAddress(target.host, ctx.config.dialLocalTargets);
    socket = await dialTcp({ host, port: target.port }, ctx.config.dialTimeoutMs, cancel.signal);
  } catch (err) {
    ctx.counters.totals.tcpFailed++;
    const failure = dialFailure(err, label);
    ctx.log.debug('tcp dial failed', { target: label, code: failure.code });
    return replyError(stream, failure.status, failure.code, failure.message);
  } finally {
    stream.off('close', onClose);
  }
  if (stream.destroyed || stream.closed) {
    socket.destroy();
    return;
  }
  stream.respond({ ':status': 200 });
  ctx.counters.totals.tcpOpened++;
  ctx.counters.track('tcp', stream);
  void joinStreams(socket, stream);
}

async function handleUdp(ctx: HandlerContext, stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
  const target = parseTarget(headerText(headers, HEADERS.target));
  if (!target) return replyError(stream, 400, 'EINVAL', `${HEADERS.target} must be host:port`);
  const label = formatTarget(target.host, target.port);
  const idleText = headerText(headers, HEADERS.idleMs);
  const idleMs = Math.min(
    Math.max(
      idleText && /^\d{1,9}$/.test(idleText) ? Number(idleText) : UDP_IDLE_DEFAULT_MS,
      UDP_IDLE_MIN_MS,
    ),
    UDP_IDLE_MAX_MS,
  );
  let socket: Awaited<ReturnType<typeof dialUdp>>;
  try {
    socket = await dialUdp({
      host: await permittedAddress(target.host, ctx.config.dialLocalTargets),
      port: target.port,
    });
  } catch (err) {
    const failure = dialFailure(err, label);
    return replyError(stream, failure.status, failure.code, failure.message);
  }
  if (stream.destroyed || stream.closed) {
    socket.close();
    return;
  }
  stream.respond({ ':status': 200 });
  ctx.counters.totals.udpFlows++;
  ctx.counters.track('udp', stream);
  let closed = false;
  let idle: NodeJS.Timeout;
  const shutdown = () => {
    if (closed) return;
    closed = true;
    clearTimeout(idle);
    socket.close();
    if (!stream.destroyed && !stream.writableEnded) stream.end();
  };
  const touch = () => {
    clearTimeout(idle);
    idle = setTimeout(shutdown, idleMs);
  };
  touch();
  // ICMP errors (port unreachable) surface here; UDP carries on regardless.
  socket.on('error', (err) => ctx.log.debug('udp socket error', { target: label, error: errorText(err) }));
  socket.on('message', (datagram) => {
    if (closed) return;
    touch();
    // UDP under backpressure drops rather than queues.
    if (stream.writableNeedDrain || stream.destroyed) return;
    stream.write(encodeFrame(datagram));
  });
  const decoder = new LengthPrefixDecoder();
  stream.on('data', (chunk: Buffer) => {
    let datagrams: Buffer[];
    try {
      datagrams = decoder.push(chunk);
    } catch (err) {
      ctx.counters.totals.protocolErrors++;
      ctx.log.debug('bad udp framing', { target: label, error: errorText(err) });
      closed = true;
      clearTimeout(idle);
      socket.close();
      stream.close(http2.constants.NGHTTP2_PROTOCOL_ERROR);
      return;
    }
    if (datagrams.length > 0) touch();
    for (const d of datagrams) {
      socket.send(d, (err) => {
        if (err) ctx.log.debug('udp send failed', { target: label, error: errorText(err) });
      });
    }
  });
  stream.on('end', shutdown);
  stream.on('close', shutdown);
}

async function handleDns(ctx: HandlerContext, stream: ServerHttp2Stream) {
  ctx.counters.totals.dnsQueries++;
  ctx.counters.track('dns', stream);
  let query: Buffer;
  try {
    query = await readBody(stream, DNS_MESSAGE_MAX);
  } catch (err) {
    ctx.counters.totals.dnsFailures++;
    return replyError(stream, 413, 'EMSGSIZE', errorText(err));
  }
  let answer: Buffer;
  try {
    answer = await ctx.dns.query(query);
  } catch (err) {
    ctx.counters.totals.dnsFailures++;
    return replyError(stream, 502, 'EDNS', errorText(err));
  }
  if (stream.destroyed || stream.closed) return;
  stream.respond({ ':status': 200, 'content-type': 'application/dns-message' });
  stream.end(answer);
}

async function handleFiles(ctx: HandlerContext, stream: ServerHttp2Stream, headers: IncomingHttpHeaders) {
  const url = new URL(headerText(headers, ':path') ?? '/', 'http://agent');
  const path = url.searchParams.get('path');
  if (!path || !isAbsolute(path)) return replyError(stream, 400, 'EINVAL', 'path must be an absolute path');
  const root = ctx.config.filesRoot;
  let pack: Awaited<ReturnType<typeof packPath>>;
  try {
    if (!(await isWithin(root, path))) {
      return replyError(
        stream,
        403,
        OUTSIDE_VOLUMES_CODE,
        `${path} is outside ${root}, where the app's volume mounts are: the agent serves nothing else`,
      );
    }
    pack = await packPath(path);
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'EIO';
    const status = code === 'ENOENT' ? 404 : code === 'EACCES' || code === 'EPERM' ? 403 : 500;
    return replyError(stream, status, code, `${path}: ${errorText(err)}`);
  }
  if (stream.destroyed || stream.closed) {
    pack.destroy();
    return;
  }
  stream.respond({ ':status': 200, 'content-type': 'application/x-tar' });
  ctx.counters.track('files', stream);
  try {
    await pipeline(pack, stream);
  } catch (err) {
    ctx.log.debug('file export failed', { path, error: errorText(err) });
    pack.destroy();
    if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
  }
}

function readBody(stream: ServerHttp2Stream, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        stream.off('data', onData);
        stream.pause();
        reject(new Error(`body exceeds ${max} bytes`));
        return;
      }
      chunks.push(chunk);
    };
    stream.on('data', onData);
    stream.once('end', () => resolve(Buffer.concat(chunks, size)));
    stream.once('close', () => reject(new Error('stream closed before its body ended')));
  });
}
