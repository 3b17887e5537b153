/**
 * The port-forward transports against the real API server, kubelet and container runtime: bytes
 * both ways intact, closing, the runtime's error text when nothing listens in the pod, and a
 * missing pod named as such.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { KubeClient } from '../../../src/kube/client.js';
import {
  openPortForward,
  type PortForwardOptions,
  PortForwardStream,
} from '../../../src/tunnel/portforward.js';
import { SpdyPortForwardStream } from '../../../src/tunnel/portforward-spdy.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { apply, nodePodManifest, testNamespace } from '../../support/cluster.js';
import { clusterClient, portForwardAccess, readyPod } from '../kube/pod-probe.js';

const ECHO = 7100;
const ECHO_SERVER = `require('node:net').createServer((s) => s.on('error', () => s.destroy()).pipe(s)).listen(${ECHO});`;

const SIZE = 16 * 1024 * 1024;

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Reads exactly `size` bytes (the stream is paused again afterwards). */
async function readBytes(stream: Duplex, size: number, limitMs: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${got} of ${size} bytes within ${limitMs} ms`)),
      limitMs,
    );
    const onData = (c: Buffer) => {
      chunks.push(c);
      got += c.length;
      if (got < size) return;
      clearTimeout(timer);
      stream.off('data', onData);
      stream.pause();
      const all = Buffer.concat(chunks);
      if (all.length > size) stream.unshift(all.subarray(size));
      resolve(all.subarray(0, size));
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
}

describe('port-forward transports on the local cluster', () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let client: KubeClient;
  let pod: string;
  let base: Omit<PortForwardOptions, 'port' | 'transport'>;

  before(async () => {
    ns = await testNamespace('pf');
    client = clusterClient(ns.name);
    await apply(
      nodePodManifest({
        name: 'echo',
        namespace: ns.name,
        app: 'pf-echo',
        script: ECHO_SERVER,
        readyPort: ECHO,
      }),
    );
    pod = await readyPod(ns.name, 'app=pf-echo');
    base = { ...(await portForwardAccess(client)), namespace: ns.name, pod };
  });
  after(() => ns?.remove());

  // SPDY on its own connection, SPDY inside WebSocket messages (the API server unwraps it), v4 channels.
  const streamKind = {
    spdy: SpdyPortForwardStream,
    'spdy-websocket': SpdyPortForwardStream,
    websocket: PortForwardStream,
  };
  for (const transport of ['spdy', 'spdy-websocket', 'websocket'] as const) {
    it(`${transport}: carries ${SIZE >> 20} MB both ways intact`, async () => {
      const stream = await openPortForward({ ...base, port: ECHO, transport });
      assert.ok(stream instanceof streamKind[transport], stream.constructor.name);
      const payload = randomBytes(SIZE);
      const echoed = readBytes(stream, SIZE, 60_000);
      stream.write(payload);
      assert.equal(sha256(await echoed), sha256(payload));
      // Ending our side closes the connection (the runtime passes no half-close to the pod).
      const closed = once(stream, 'close');
      stream.resume();
      stream.end();
      await Promise.race([
        closed,
        new Promise((_, reject) =>
          setTimeout(() => reject(new Error('not closed within 5 s')), 5_000).unref(),
        ),
      ]);
    });

    it(`${transport}: a pod port nobody listens on fails with the runtime's reason`, async () => {
      const stream = await openPortForward({ ...base, port: ECHO + 1, transport });
      stream.resume();
      stream.write('hello');
      const err = await new Promise<Error | undefined>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('neither error nor close within 15 s')), 15_000);
        let seen: Error | undefined;
        stream.on('error', (e: Error) => {
          seen = e;
        });
        stream.on('close', () => {
          clearTimeout(timer);
          resolve(seen);
        });
      });
      assert.ok(err, 'the stream closed without an error');
      assert.ok(isDevboxError(err, 'TUNNEL'), String(err));
      assert.match(err.message, /refused|failed to connect|error forwarding/i);
    });

    it(`${transport}: an unknown pod is NOT_FOUND and names the pod`, async () => {
      await assert.rejects(openPortForward({ ...base, pod: 'no-such-pod', port: ECHO, transport }), (err) => {
        assert.ok(isDevboxError(err, 'NOT_FOUND'), String(err));
        assert.match((err as Error).message, /no-such-pod/);
        return true;
      });
    });
  }
});
