/**
 * Receive windows that follow the path's bandwidth-delay product. A stream carries at most one
 * window per round trip, so the {@link H2_SETTINGS} window of 4 MiB holds one stream to ~670 Mbit/s
 * at 50 ms, and less in practice: the receiver returns window in halves. A larger fixed window
 * would let every stalled reader make its peer buffer that much more on every path, the short
 * ones included. So each receiver measures instead, as gRPC's BDP estimator does: while data
 * arrives it sends a PING and counts the bytes received until the answer. A sender held by the
 * window has between half of it and all of it in flight (the receiver returns window in halves),
 * so a round trip that carried half the stream window or more may have been held by it. It was if
 * the path itself holds that much: the bandwidth of the sample times the path's own round trip
 * (the shortest ping answer seen, idle ones included: a full window lengthens the round trip by
 * the queue it builds) is at least a third of the window. Then the receiver doubles the initial
 * stream window it offers (a SETTINGS change, which RFC 9113 §6.9.2 applies to open streams too),
 * up to {@link H2_STREAM_WINDOW_MAX}. Through the API server on one machine the round trip is a
 * millisecond or two, so windows stay at their start even when socket buffers fill.
 */
import type { Http2Session } from 'node:http2';
import { H2_SETTINGS } from './protocol.js';

/** The largest stream window a receiver grows to: ~1.3 Gbit/s at 80 ms; what one stalled reader can cost. */
export const H2_STREAM_WINDOW_MAX = 16 * 1024 * 1024;

/** How often an idle receiver looks whether data flows again. */
const PROBE_INTERVAL_MS = 25;
/** Less than this since the last look is control traffic (pings, stats), not a transfer. */
const PROBE_MIN_BYTES = 64 * 1024;

export interface WindowEstimate {
  /** The stream window offered now. */
  window: number;
  /** The shortest ping round trip seen (ms): the path without a queue. */
  minRttMs: number;
}

/**
 * The estimate after one sample of `bytes` received during a ping's round trip of `rttMs`: a
 * doubled window when the window held the sender back on a path that holds that much.
 */
export function nextWindow(
  estimate: WindowEstimate,
  bytes: number,
  rttMs: number,
  max = H2_STREAM_WINDOW_MAX,
): WindowEstimate {
  const minRttMs = Math.min(estimate.minRttMs, rttMs);
  const seen = minRttMs === estimate.minRttMs ? estimate : { ...estimate, minRttMs };
  const { window } = estimate;
  if (window >= max || rttMs <= 0 || bytes < window / 2) return seen;
  // What the path itself carries per round trip, without the queue this window builds.
  const pathBytes = (bytes / rttMs) * minRttMs;
  if (3 * pathBytes < window) return seen;
  return { window: Math.min(max, 2 * window), minRttMs };
}

/** Grows `session`'s receive windows while it lives (see the module comment). */
export function tuneReceiveWindow(session: Http2Session, max = H2_STREAM_WINDOW_MAX): void {
  let estimate: WindowEstimate = {
    window: H2_SETTINGS.initialWindowSize,
    minRttMs: Number.POSITIVE_INFINITY,
  };
  let probing = false;
  let seen = 0;
  const received = () => session.socket?.bytesRead ?? 0;
  const timer = setInterval(() => {
    if (probing || session.destroyed || session.closed) return;
    const start = received();
    if (start - seen < PROBE_MIN_BYTES) {
      seen = start;
      return;
    }
    seen = start;
    probing = true;
    const sent = session.ping((err, rttMs) => {
      probing = false;
      if (err || session.destroyed || session.closed) return;
      const next = nextWindow(estimate, received() - start, rttMs, max);
      const grown = next.window > estimate.window;
      estimate = next;
      if (!grown) return;
      try {
        session.settings({ initialWindowSize: next.window });
      } catch {
        // A session that closed meanwhile keeps its windows.
      }
      if (next.window >= max) clearInterval(timer);
    });
    if (!sent) probing = false;
  }, PROBE_INTERVAL_MS);
  timer.unref();
  session.once('close', () => clearInterval(timer));
  // The path's own round trip, before any transfer queues behind the pings.
  const seed = () => {
    try {
      session.ping((err, rttMs) => {
        if (!err) estimate = nextWindow(estimate, 0, rttMs, max);
      });
    } catch {
      // A session that closed meanwhile needs no estimate.
    }
  };
  if (session.connecting) session.once('connect', seed);
  else seed();
}
