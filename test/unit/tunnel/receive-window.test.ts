import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { H2_SETTINGS } from '../../../src/tunnel/protocol.js';
import { H2_STREAM_WINDOW_MAX, nextWindow, tuneReceiveWindow } from '../../../src/tunnel/receive-window.js';

const MiB = 1024 * 1024;

describe('nextWindow', () => {
  const start = { window: 4 * MiB, minRttMs: 50 };

  it('keeps the window when a round trip carried less than half of it: the window did not limit', () => {
    assert.equal(nextWindow(start, 2 * MiB - 1, 50).window, 4 * MiB);
  });

  it('doubles the window when a round trip of the path carried half of it or more', () => {
    assert.equal(nextWindow(start, 2 * MiB, 50).window, 8 * MiB);
    // The round trip lengthened by the data queued at the link rate (4 MiB at 1 Gbit/s: 34 ms).
    assert.equal(nextWindow({ window: 8 * MiB, minRttMs: 50 }, 7 * MiB, 100).window, 16 * MiB);
  });

  it('keeps the window when the round trip is the queue it built, not the path', () => {
    // Socket buffers on a one-machine path: 4 MiB arrive in 20 ms where the path takes 1 ms.
    assert.equal(nextWindow({ window: 4 * MiB, minRttMs: 1 }, 4 * MiB, 20).window, 4 * MiB);
  });

  it('learns the shortest round trip from every answer, idle ones included', () => {
    const seeded = nextWindow({ window: 4 * MiB, minRttMs: Number.POSITIVE_INFINITY }, 0, 2);
    assert.deepEqual(seeded, { window: 4 * MiB, minRttMs: 2 });
    assert.equal(nextWindow(seeded, 3 * MiB, 2.5).minRttMs, 2);
  });

  it('stops at the maximum', () => {
    assert.equal(nextWindow({ window: 12 * MiB, minRttMs: 50 }, 64 * MiB, 50).window, H2_STREAM_WINDOW_MAX);
    const top = { window: H2_STREAM_WINDOW_MAX, minRttMs: 10 };
    assert.equal(nextWindow(top, 64 * MiB, 10), top);
  });
});

/** A TCP relay that holds every chunk `delayMs` in each direction: a long path on loopback. */
async function delayingRelay(targetPort: number, delayMs: number): Promise<{ port: number; close(): void }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(targetPort, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    const forward = (from: net.Socket, to: net.Socket) =>
      from.on('data', (chunk: Buffer) => setTimeout(() => to.writable && to.write(chunk), delayMs));
    forward(inbound, outbound);
    forward(outbound, inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

describe('tuneReceiveWindow', () => {
  const closers: (() => void)[] = [];
  after(() => {
    for (const close of closers.reverse()) close();
  });

  it('grows the stream window a receiver offers once a long round trip holds it back', async () => {
    const server = http2.createServer({ settings: H2_SETTINGS });
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 });
      const block = Buffer.alloc(MiB, 1);
      let left = 48;
      const pump = () => {
        while (left > 0) {
          left--;
          if (!stream.write(block)) return void stream.once('drain', pump);
        }
        stream.end();
      };
      pump();
    });
    // The sender learns the receiver's window from its SETTINGS.
    const offered: number[] = [];
    server.on('session', (session) =>
      session.on('remoteSettings', (s) => offered.push(s.initialWindowSize ?? 0)),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const relay = await delayingRelay((server.address() as AddressInfo).port, 20);
    closers.push(relay.close);

    const client = http2.connect(`http://127.0.0.1:${relay.port}`, { settings: H2_SETTINGS });
    closers.push(() => client.destroy());
    client.on('connect', () => {
      client.setLocalWindowSize(64 * MiB);
      tuneReceiveWindow(client);
    });
    const response = client.request({ ':path': '/' });
    response.resume();
    await new Promise((resolve) => response.on('end', resolve));

    assert.equal(offered[0], H2_SETTINGS.initialWindowSize);
    const largest = Math.max(...offered);
    assert.ok(largest > H2_SETTINGS.initialWindowSize, `windows offered: ${offered.join(', ')}`);
    assert.ok(largest <= H2_STREAM_WINDOW_MAX);
  });
});
