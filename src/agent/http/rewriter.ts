import type { IncomingHttpHeaders } from 'node:http';

/** One inbound request as a {@link RequestRewriter} sees it, before it is matched to a session. */
export interface InboundRequest {
  readonly protocol: 'http/1.1' | 'h2';
  readonly method: string;
  /** The request target: path and query. */
  readonly path: string;
  /** Lower-case names. Changes made here are what the session filters see and what is forwarded. */
  readonly headers: IncomingHttpHeaders;
  readonly clientAddress: string;
  /** The agent port the request arrived on. */
  readonly interceptPort: number;
}

/** An answer given by the agent itself instead of forwarding the request. */
export interface LocalAnswer {
  status: number;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
}

/**
 * A step run on every request of a filtered port before it is matched: it may add or change
 * headers (e.g. turn a cookie into `baggage: devbox-session=<key>`), or answer the request itself
 * (e.g. a redirect that sets that cookie). Synchronous: it runs on the request path.
 */
export interface RequestRewriter {
  rewrite(request: InboundRequest): LocalAnswer | undefined;
}

export const NO_REWRITE: RequestRewriter = { rewrite: () => undefined };
