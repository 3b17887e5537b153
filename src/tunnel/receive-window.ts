/**
 * Receive windows that follow the path's bandwidth-delay product. A stream carries at most one
 * window per round trip, so the {@link H2_SETTINGS} window of 4 MiB holds one stream to ~670 Mbit/s
 * at 50 ms, and less in practice: the receiver returns window in halves. A larger fixed window
 * would let every stalled reader make its peer buffer that much more on every path, the short
 * ones included. So each receiver measures instead, as gRPC's BDP estimator does: while data
 * arrives it sends a PING and counts the bytes received until the answer. A sender held by the
 * window has between half of it and all of it in flight (the receiver returns window in halves),
 * so when a round trip carried half the stream window or more and the bandwidth it shows is the
 * highest yet, the receiver doubles the initial stream window it offers (a SETTINGS change, which
 * RFC 9113 §6.9.2 applies to open streams too), up to {@link H2_STREAM_WINDOW_MAX}. A larger window
 * that brings no more bandwidth (the path or a CPU is the limit) stops the growth. On loopback a
 * round trip carries little, so windows stay at their start.
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
  /** Highest bandwidth (bytes/ms) seen in a sample that led to a larger window. */
  bandwidth: number;
}

/**
 * The window after one sample of `bytes` received during a ping's round trip of `rttMs`; the same
 * estimate when the window did not limit or the bandwidth did not grow.
 */
export function nextWindow(
  estimate: WindowEstimate,
  bytes: number,
  rttMs: number,
  max = H2_STREAM_WINDOW_MAX,
): WindowEstimate {
  if (estimate.window >= max || bytes < estimate.window / 2 || rttMs <= 0) return estimate;
  const bandwidth = bytes / rttMs;
  if (bandwidth <= estimate.bandwidth) return estimate;
  return { window: Math.min(max, 2 * estimate.window), bandwidth };
}

/** Grows `session`'s receive windows while it lives (see the module comment). */
export function tuneReceiveWindow(session: Http2Session, max = H2_STREAM_WINDOW_MAX): void {
  let estimate: WindowEstimate = { window: H2_SETTINGS.initialWindowSize, bandwidth: 0 };
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
      if (next === estimate) return;
      estimate = next;
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
}
