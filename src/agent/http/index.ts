import type net from 'node:net';
import type { InterceptSpec } from '../../tunnel/protocol.js';
import type { Logger } from '../../util/log.js';
import type { AgentCounters } from '../stats.js';
import { H2Router } from './h2.js';
import { Http1Router, type RouterContext } from './http1.js';
import { Mirrors } from './mirror.js';
import { NO_REWRITE, type RequestRewriter } from './rewriter.js';
import type { SessionDirectory } from './sessions.js';
import { REQUEST_LINE_MAX, sniff } from './sniff.js';
import { Upstreams } from './upstreams.js';

export type { InboundRequest, LocalAnswer, RequestRewriter } from './rewriter.js';
export type { SessionDirectory } from './sessions.js';

/**
 * A connection that sends nothing for this long is passed through: the protocol may be one where
 * the server speaks first. Long enough for a browser's preconnected socket to send its request.
 */
export const SNIFF_WAIT_MS = 2_000;

export interface HttpRoutingOptions {
  sessions: SessionDirectory;
  counters: AgentCounters;
  log: Logger;
  /** How long a request waits for a session's accept stream before the pod's app serves it. */
  acceptWaitMs: number;
  rewriter?: RequestRewriter;
}

/**
 * The intercept ports' HTTP path, taken while a filtered or mirror session is open: tells each
 * connection's protocol from its first bytes and routes HTTP per request (HTTP/1.x) or per stream
 * (HTTP/2); anything else is handed back to be passed through untouched.
 */
export class HttpRouting {
  private readonly upstreams: Upstreams;
  private readonly http1: Http1Router;
  private readonly h2: H2Router;

  constructor(private readonly opts: HttpRoutingOptions) {
    this.upstreams = new Upstreams(opts.sessions, opts.counters, opts.acceptWaitMs);
    const ctx: RouterContext = {
      sessions: opts.sessions,
      upstreams: this.upstreams,
      mirrors: new Mirrors(this.upstreams),
      rewriter: opts.rewriter ?? NO_REWRITE,
      counters: opts.counters,
      log: opts.log,
    };
    this.http1 = new Http1Router(ctx);
    this.h2 = new H2Router(ctx);
  }

  /** Routes one caller's connection; `passThrough` takes what is not HTTP, with the bytes read so far. */
  serve(socket: net.Socket, spec: InterceptSpec, passThrough: (replay: Buffer[]) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      const kind = sniff(head) ?? (size > REQUEST_LINE_MAX + 64 ? 'other' : undefined);
      if (kind === undefined) return;
      finish();
      if (kind === 'http1') this.http1.serve(socket, head, spec);
      else if (kind === 'h2') this.h2.serve(socket, head, spec);
      else this.notHttp(chunks, passThrough);
    };
    const onEnd = () => {
      finish();
      this.notHttp(chunks, passThrough);
    };
    const timer = setTimeout(() => {
      finish();
      this.notHttp(chunks, passThrough);
    }, SNIFF_WAIT_MS);
    socket.on('data', onData);
    socket.once('end', onEnd);
  }

  /** Sessions or their accept streams changed. */
  wake(): void {
    this.upstreams.wake();
  }

  close(): void {
    this.upstreams.close();
  }

  private notHttp(chunks: Buffer[], passThrough: (replay: Buffer[]) => void): void {
    this.opts.counters.totals.notHttp = (this.opts.counters.totals.notHttp ?? 0) + 1;
    passThrough(chunks);
  }
}
