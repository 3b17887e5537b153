import { Duplex } from 'node:stream';
import { DevboxError } from '../util/errors.js';

/** Largest error text kept from the server. */
export const ERROR_TEXT_MAX = 4096;

/**
 * What both port-forward streams share: whatever is queued is sent at once as one batch (one frame
 * on the wire), and an abort signal destroys the stream for as long as it lives.
 */
export abstract class PortForwardDuplex extends Duplex {
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
