import { Duplex } from 'node:stream';
import { DevboxError } from '../util/errors.js';

/** Largest error text kept from the server. */
export const ERROR_TEXT_MAX = 4096;

/**
 * What both port-forward streams share: whatever is queued is sent at once as one batch (one frame
 * on the wire), and an abort signal destroys the stream for as long as it lives.
 */
export abstract class PortForwardDuplex extends Duplex {
  private keepalive: NodeJS.Timeout | undefined;
  private awaitingAnswer = false;

  protected abstract send(chunks: Buffer[], callback: (error?: Error | null) => void): void;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.send([chunk], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.send(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  /**
   * Pings every `intervalMs` (0: never); when nothing came back by the next ping, destroys the
   * stream with `silence`. A transport paused by backpressure cannot read the answer, so it is not
   * judged then.
   */
  protected startKeepalive(
    intervalMs: number,
    transport: { ping(): void; paused(): boolean },
    silence: string,
  ): void {
    if (intervalMs <= 0) return;
    this.keepalive = setInterval(() => {
      if (transport.paused()) this.awaitingAnswer = false;
      if (this.awaitingAnswer) {
        this.destroy(new DevboxError('TUNNEL', silence));
        return;
      }
      this.awaitingAnswer = true;
      transport.ping();
    }, intervalMs);
    this.keepalive.unref();
  }

  /** Anything from the server (data, a pong) shows it is alive. */
  protected heardFromServer(): void {
    this.awaitingAnswer = false;
  }

  protected stopKeepalive(): void {
    clearInterval(this.keepalive);
  }

  /** Destroys the stream with the server's error text about it (the pod port refused, …). */
  protected failWithServerText(label: string, text: string): void {
    this.destroy(new DevboxError('TUNNEL', `${label}: ${text.slice(0, ERROR_TEXT_MAX).trim()}`));
  }

  /** Destroys the stream with "`label`: aborted" when `signal` aborts. */
  destroyOnAbort(signal: AbortSignal | undefined, label: string): void {
    if (!signal) return;
    const onAbort = () => this.destroy(new DevboxError('TUNNEL', `${label}: aborted`));
    signal.addEventListener('abort', onAbort, { once: true });
    this.once('close', () => signal.removeEventListener('abort', onAbort));
  }
}
