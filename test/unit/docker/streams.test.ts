import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { demuxDockerStream, readEngineMessages } from '../../../src/docker/streams.js';
import { isDevboxError } from '../../../src/util/errors.js';

function frame(stream: 1 | 2, text: string | Buffer): Buffer {
  const payload = typeof text === 'string' ? Buffer.from(text) : text;
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

async function collect(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

describe('demuxDockerStream', () => {
  it('splits frames cut at arbitrary points and ends both outputs with the source', async () => {
    const wire = Buffer.concat([
      frame(1, 'out one\n'),
      frame(2, 'err one\n'),
      frame(1, 'out two\n'),
      frame(2, ''),
    ]);
    // One byte at a time: headers and payloads split everywhere.
    const source = Readable.from([...wire].map((b) => Buffer.from([b])));
    const { stdout, stderr } = demuxDockerStream(source);
    const [out, err] = await Promise.all([collect(stdout), collect(stderr)]);
    assert.equal(out, 'out one\nout two\n');
    assert.equal(err, 'err one\n');
  });

  it('ends the outputs when the source is closed without end', async () => {
    const source = new PassThrough();
    const { stdout, stderr } = demuxDockerStream(source);
    source.write(frame(1, 'partial'));
    const done = Promise.all([collect(stdout), collect(stderr)]);
    setImmediate(() => source.destroy());
    const [out, err] = await done;
    assert.equal(out, 'partial');
    assert.equal(err, '');
  });

  it('passes a source error to both outputs', async () => {
    const source = new PassThrough();
    const { stdout, stderr } = demuxDockerStream(source);
    const outcome = Promise.allSettled([collect(stdout), collect(stderr)]);
    source.destroy(new Error('connection reset'));
    const [a, b] = await outcome;
    assert.equal(a.status, 'rejected');
    assert.equal(b.status, 'rejected');
  });

  it('releases the source when the reader destroys both outputs', async () => {
    const source = new PassThrough();
    const { stdout, stderr } = demuxDockerStream(source);
    stdout.destroy();
    stderr.destroy();
    await new Promise((resolve) => source.once('close', resolve));
    assert.equal(source.destroyed, true);
  });

  it('pauses the source while a reader is slow and loses nothing', async () => {
    const big = Buffer.alloc(256 * 1024, 'x');
    const frames = Array.from({ length: 16 }, () => frame(1, big));
    const source = Readable.from(frames);
    const { stdout, stderr } = demuxDockerStream(source);
    stderr.resume();
    let total = 0;
    for await (const chunk of stdout) {
      total += (chunk as Buffer).length;
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(total, 16 * big.length);
  });
});

describe('readEngineMessages', () => {
  it('parses JSON lines split across chunks', async () => {
    const text =
      '{"stream":"Step 1/2\\n"}\n{"aux":{"ID":"sha256:abc"}}\n{"stream":"Successfully built abc\\n"}';
    const source = Readable.from([text.slice(0, 10), text.slice(10, 31), text.slice(31)]);
    const messages = await readEngineMessages(source, { code: 'INTERNAL', what: 'build' });
    assert.equal(messages.length, 3);
    assert.equal(messages[1]?.aux?.ID, 'sha256:abc');
  });

  it('rejects on an error inside the stream (HTTP 200 with a failure), with the output as hint', async () => {
    const source = Readable.from([
      '{"stream":"Step 2/2 : RUN false\\n"}\n',
      '{"stream":"---> Running in 1234\\n"}\n',
      '{"errorDetail":{"code":1,"message":"The command \'/bin/sh -c false\' returned a non-zero code: 1"},"error":"The command \'/bin/sh -c false\' returned a non-zero code: 1"}\n',
    ]);
    await assert.rejects(
      readEngineMessages(source, { code: 'BAD_INPUT', what: 'docker build of x' }),
      (err) =>
        isDevboxError(err, 'BAD_INPUT') &&
        /docker build of x failed: The command .* non-zero code: 1/.test(err.message) &&
        /RUN false/.test(err.hint ?? ''),
    );
  });
});
