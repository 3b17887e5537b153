import { PassThrough, type Readable } from 'node:stream';
import { DevboxError, type ErrorCode } from '../util/errors.js';

/**
 * Split Docker's multiplexed stdout/stderr stream (8-byte frame headers:
 * stream id, three zero bytes, big-endian payload length). Unlike
 * dockerode's `demuxStream`, both outputs end when the source ends, errors
 * reach both outputs, a slow reader pauses the source, and destroying both
 * outputs destroys the source.
 */
export function demuxDockerStream(source: Readable): { stdout: PassThrough; stderr: PassThrough } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let pending: Buffer = Buffer.alloc(0);
  let waiting = 0;

  const resumeWhenDrained = (out: PassThrough) => {
    waiting++;
    source.pause();
    out.once('drain', () => {
      if (--waiting === 0) source.resume();
    });
  };

  source.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      const kind = pending[0];
      const payload = pending.subarray(8, 8 + size);
      pending = pending.subarray(8 + size);
      // 0 = stdin (echoed with a tty-less attach), 1 = stdout, 2 = stderr.
      const out = kind === 2 ? stderr : stdout;
      if (payload.length && !out.write(payload)) resumeWhenDrained(out);
    }
  });
  // A reader that destroys both outputs is done: release the connection.
  let closedOutputs = 0;
  const onOutputClose = () => {
    if (++closedOutputs === 2 && !source.readableEnded) source.destroy();
  };
  stdout.once('close', onOutputClose);
  stderr.once('close', onOutputClose);
  source.once('end', () => {
    stdout.end();
    stderr.end();
  });
  source.once('error', (err) => {
    stdout.destroy(err);
    stderr.destroy(err);
  });
  source.once('close', () => {
    // A socket closed without 'end' (container removed mid-stream) still ends the outputs.
    for (const out of [stdout, stderr]) if (!out.writableEnded && !out.destroyed) out.end();
  });
  return { stdout, stderr };
}

/** One JSON message of the engine's progress streams (build, load, pull). */
export interface EngineMessage {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: { ID?: string };
  id?: string;
  progress?: string;
}

/**
 * Read a newline-delimited JSON progress stream to its end. The engine
 * reports failures inside the stream (HTTP 200 with an `error` message), so
 * the first such message rejects with a DevboxError carrying `code`.
 */
export async function readEngineMessages(
  source: Readable,
  options: { code: ErrorCode; what: string; hint?: string; onMessage?: (message: EngineMessage) => void },
): Promise<EngineMessage[]> {
  const messages: EngineMessage[] = [];
  let buffered = '';
  let failure: EngineMessage | undefined;
  const take = (line: string) => {
    const text = line.trim();
    if (!text) return;
    let message: EngineMessage;
    try {
      message = JSON.parse(text) as EngineMessage;
    } catch {
      message = { stream: `${text}\n` };
    }
    messages.push(message);
    options.onMessage?.(message);
    if (!failure && (message.error || message.errorDetail)) failure = message;
  };
  for await (const chunk of source) {
    buffered += typeof chunk === 'string' ? chunk : (chunk as Buffer).toString('utf8');
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      take(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
    }
  }
  take(buffered);
  if (failure) {
    const detail = failure.errorDetail?.message || failure.error || 'unknown error';
    const tail = messages
      .filter((m) => m.stream)
      .slice(-10)
      .map((m) => m.stream?.trimEnd())
      .join('\n');
    throw new DevboxError(options.code, `${options.what} failed: ${detail.trim()}`, {
      hint: options.hint ?? (tail ? `Last output:\n${tail}` : undefined),
    });
  }
  return messages;
}
