import { constants as h2 } from 'node:http2';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

type Http2StreamLike = Duplex & {
  rstCode?: number;
  close(code?: number, cb?: () => void): void;
  closed: boolean;
};

function isHttp2Stream(stream: Duplex): stream is Http2StreamLike {
  const s = stream as Partial<Http2StreamLike> & { session?: unknown };
  return typeof s.close === 'function' && 'rstCode' in s && 'session' in s;
}

/**
 * Tears a stream down abruptly so that the far end sees a reset, not an orderly end: a TCP socket is
 * reset (RST), an HTTP/2 stream gets RST_STREAM without END_STREAM, anything else is destroyed.
 * Use this, not `Http2Stream.close(code)`, to reset a tunnel stream.
 */
export function abortStream(stream: Duplex): void {
  if (stream.destroyed) return;
  // A reset may surface as an 'error' event after we are done with the stream: keep it contained.
  if (stream.listenerCount('error') === 0) stream.on('error', () => {});
  try {
    if (isHttp2Stream(stream)) {
      // close(code) would end the writable side first and the peer would see END_STREAM before the
      // RST_STREAM; destroy(err) sends RST_STREAM (INTERNAL_ERROR) alone.
      stream.destroy(new Error('stream reset'));
    } else if (
      stream instanceof Socket &&
      !stream.connecting &&
      typeof stream.resetAndDestroy === 'function'
    ) {
      stream.resetAndDestroy();
    } else {
      stream.destroy();
    }
  } catch {
    stream.destroy();
  }
}

/** True when a stream closed after both directions finished normally. */
function closedCleanly(stream: Duplex): boolean {
  if (stream.errored) return false;
  if (isHttp2Stream(stream) && stream.rstCode !== undefined && stream.rstCode !== h2.NGHTTP2_NO_ERROR)
    return false;
  return stream.readableEnded && stream.writableFinished;
}

/** True when an HTTP/2 stream was reset by its peer (node then still emits 'end' before 'close'). */
function wasReset(stream: Duplex): boolean {
  return isHttp2Stream(stream) && stream.rstCode !== undefined && stream.rstCode !== h2.NGHTTP2_NO_ERROR;
}

/** Pipes `from` into `to`; an end becomes an end, a reset becomes a reset. */
function forward(from: Duplex, to: Duplex): void {
  from.pipe(to, { end: false });
  const onEnd = () => {
    // A peer that resets with close(code) sends END_STREAM just before RST_STREAM; both arrive in
    // the same read, so one turn of the event loop tells an end from a reset.
    setImmediate(() => {
      if (wasReset(from)) abortStream(to);
      else if (!to.destroyed) to.end();
    });
  };
  // An HTTP/2 stream that got END_STREAM with no data ends before anyone reads it: it may be over already.
  if (from.readableEnded) onEnd();
  else from.once('end', onEnd);
}

/** Outcome of {@link joinStreams}. */
export interface JoinResult {
  /** Bytes that flowed a → b and b → a. */
  aToB: number;
  bToA: number;
  /** Set when a side failed or was reset rather than ending normally. */
  error?: Error;
}

/**
 * Joins two byte streams, e.g. a TCP socket and an HTTP/2 stream, with backpressure both ways.
 * An end on one side becomes an end (FIN / END_STREAM) on the other: half-close works, so both
 * sockets must be created with `allowHalfOpen: true`. An error or reset on one side resets the other.
 * Errors of either stream are always handled here. Resolves once both sides are closed.
 */
export function joinStreams(a: Duplex, b: Duplex): Promise<JoinResult> {
  return new Promise((resolve) => {
    const result: JoinResult = { aToB: 0, bToA: 0 };
    let open = 2;
    const onError = (err: Error) => {
      result.error ??= err;
    };
    a.on('error', onError);
    b.on('error', onError);
    const watch = (self: Duplex, other: Duplex) => {
      const done = () => {
        if (!closedCleanly(self)) {
          result.error ??= new Error('stream reset');
          abortStream(other);
        }
        if (--open === 0) resolve(result);
      };
      if (self.closed) queueMicrotask(done);
      else self.once('close', done);
    };
    a.on('data', (chunk: Buffer) => {
      result.aToB += chunk.length;
    });
    b.on('data', (chunk: Buffer) => {
      result.bToA += chunk.length;
    });
    forward(a, b);
    forward(b, a);
    watch(a, b);
    watch(b, a);
  });
}
