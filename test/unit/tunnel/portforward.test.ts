import assert from 'node:assert/strict';
import { once } from 'node:events';
import http, { type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { openPortForward, type PortForwardOptions } from '../../../src/tunnel/portforward.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { eventually, Fixtures, sleep, within } from './harness.js';

const PORT = 9901;

interface FakeApi {
  server: string;
  requests: IncomingMessage[];
}

/**
 * A fake API server on 127.0.0.1:0 speaking the port-forward side of v4.channel.k8s.io.
 * `status` answers the upgrade with that HTTP status and a Kubernetes Status body instead.
 */
async function fakeApi(
  fx: Fixtures,
  onSocket: (ws: WebSocket) => void,
  opts: { status?: number; autoPong?: boolean; sendPrefixes?: boolean } = {},
): Promise<FakeApi> {
  const wss = new WebSocketServer({
    noServer: true,
    autoPong: opts.autoPong ?? true,
    handleProtocols: (protocols) => (protocols.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false),
  });
  const requests: IncomingMessage[] = [];
  const server = http.createServer();
  server.on('upgrade', (req, socket, head) => {
    requests.push(req);
    if (opts.status) {
      const body = JSON.stringify({
        kind: 'Status',
        status: 'Failure',
        message: `status ${opts.status} from fake`,
        code: opts.status,
      });
      socket.end(
        `HTTP/1.1 ${opts.status} X\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {});
      if (opts.sendPrefixes ?? true) {
        ws.send(Buffer.from([0, PORT & 0xff, PORT >> 8]));
        ws.send(Buffer.from([1, PORT & 0xff, PORT >> 8]));
      }
      onSocket(ws);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fx.add(
    () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

function options(api: FakeApi, extra: Partial<PortForwardOptions> = {}): PortForwardOptions {
  return {
    server: api.server,
    token: 'tok',
    namespace: 'shop',
    pod: 'api-0',
    port: PORT,
    transport: 'websocket',
    ...extra,
  };
}

/** Data frames the fake server receives, without the channel byte. */
function onData(ws: WebSocket, fn: (data: Buffer) => void): void {
  ws.on('message', (msg: Buffer) => {
    assert.equal(msg[0], 0, 'client writes on the data channel');
    fn(msg.subarray(1));
  });
}

function frame(channel: number, payload: Buffer | string): Buffer {
  return Buffer.concat([Buffer.from([channel]), Buffer.from(payload)]);
}

/** What a request asked for: the upgrade, or for WebSockets the subprotocol. */
function asked(req: { headers: Record<string, string | string[] | undefined> }): string {
  const upgrade = String(req.headers.upgrade ?? '').toLowerCase();
  return upgrade === 'websocket' ? String(req.headers['sec-websocket-protocol']) : upgrade;
}

describe('port-forward client', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('requests the right URL with the bearer token and subprotocol, and carries bytes both ways', async () => {
    const api = await fakeApi(fx, (ws) => onData(ws, (d) => ws.send(frame(0, d))));
    const stream = await openPortForward(options(api));
    fx.add(() => {
      stream.destroy();
    });
    const req = api.requests[0]!;
    assert.equal(req.url, `/api/v1/namespaces/shop/pods/api-0/portforward?ports=${PORT}`);
    assert.equal(req.headers.authorization, 'Bearer tok');
    assert.equal(req.headers['sec-websocket-protocol'], 'v4.channel.k8s.io');
    assert.equal(req.headers['sec-websocket-extensions'], undefined, 'no permessage-deflate');
    stream.write('hello');
    const [chunk] = await once(stream, 'data');
    assert.equal(chunk.toString(), 'hello');
  });

  it('auto: asks for SPDY, then SPDY in a WebSocket, then v4 channels, and goes straight to what worked next time', async () => {
    const api = await fakeApi(fx, (ws) => onData(ws, (d) => ws.send(frame(0, d))));
    const first = await openPortForward(options(api, { transport: 'auto' }));
    fx.add(() => {
      first.destroy();
    });
    assert.deepEqual(api.requests.map(asked), [
      'spdy/3.1',
      'SPDY/3.1+portforward.k8s.io',
      'v4.channel.k8s.io',
    ]);
    assert.equal(api.requests[0]!.headers['x-stream-protocol-version'], 'portforward.k8s.io');
    assert.equal(api.requests[0]!.headers.authorization, 'Bearer tok');
    first.write('via fallback');
    const [chunk] = await once(first, 'data');
    assert.equal(chunk.toString(), 'via fallback');
    const second = await openPortForward(options(api, { transport: 'auto' }));
    second.destroy();
    assert.equal(api.requests.length, 4);
    assert.equal(asked(api.requests[3]!), 'v4.channel.k8s.io');
  });

  it('auto: a refusal that WebSocket gets too (the pod, not the protocol) does not give up SPDY', async () => {
    const api = await fakeApi(fx, () => {}, { status: 400 });
    for (let round = 0; round < 2; round++) {
      await assert.rejects(openPortForward(options(api, { transport: 'auto' })), /HTTP 400/);
    }
    const round = ['spdy/3.1', 'SPDY/3.1+portforward.k8s.io', 'v4.channel.k8s.io'];
    assert.deepEqual(api.requests.map(asked), [...round, ...round]);
  });

  it('spdy: a refused upgrade is an error naming the status, with no fallback', async () => {
    const api = await fakeApi(fx, () => {});
    await assert.rejects(openPortForward(options(api, { transport: 'spdy' })), (err) => {
      assert.ok(isDevboxError(err, 'TUNNEL'), String(err));
      assert.match((err as Error).message, /upgrade failed with HTTP 405/);
      return true;
    });
    assert.equal(api.requests.length, 1);
  });

  it('read side: stops reading the WebSocket while the consumer does not read, loses nothing', async () => {
    const total = 64 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024);
    let sent = 0;
    const api = await fakeApi(fx, async (ws) => {
      while (sent < total && ws.readyState === WebSocket.OPEN) {
        if (ws.bufferedAmount > 1024 * 1024) {
          await sleep(5);
          continue;
        }
        chunk.fill(sent / chunk.length);
        ws.send(frame(0, chunk));
        sent += chunk.length;
      }
    });
    const stream = await openPortForward(options(api));
    fx.add(() => {
      stream.destroy();
    });
    await sleep(1000);
    assert.ok(sent < total / 2, `server was held back (sent ${sent} of ${total})`);
    assert.ok(stream.readableLength <= 4 * 1024 * 1024, `client buffer bounded (${stream.readableLength})`);
    let received = 0;
    let ok = true;
    stream.on('data', (d: Buffer) => {
      for (let i = 0; i < d.length; i += 4096) {
        if (d[i] !== (((received + i) / chunk.length) % 256) >>> 0) ok = false;
      }
      received += d.length;
    });
    await within(
      eventually(() => received === total, 20_000, 'all data'),
      25_000,
      'reading 64 MiB',
    );
    assert.ok(ok, 'content in order');
  });

  it('write side: write() waits while the server does not read, loses nothing', async () => {
    let received = 0;
    let serverWs: WebSocket | undefined;
    const api = await fakeApi(fx, (ws) => {
      serverWs = ws;
      ws.pause();
      onData(ws, (d) => {
        received += d.length;
      });
    });
    const stream = await openPortForward(options(api));
    fx.add(() => {
      stream.destroy();
    });
    const total = 128 * 1024 * 1024;
    const chunk = Buffer.alloc(256 * 1024, 1);
    let written = 0;
    const writer = (async () => {
      while (written < total) {
        written += chunk.length;
        if (!stream.write(chunk)) await once(stream, 'drain');
      }
    })();
    await sleep(1000);
    assert.ok(written < total / 2, `writer held back (${written} accepted)`);
    assert.ok(stream.writableLength <= 2 * 1024 * 1024, `writable buffer bounded (${stream.writableLength})`);
    serverWs!.resume();
    await within(writer, 20_000, 'writing');
    await eventually(() => received === total, 20_000, 'all data at the server');
  });

  it('surfaces error-channel text as an error', async () => {
    const api = await fakeApi(fx, (ws) =>
      ws.send(frame(1, 'error forwarding port 9901: connection refused')),
    );
    const stream = await openPortForward(options(api));
    stream.resume();
    const [err] = await once(stream, 'error');
    assert.ok(isDevboxError(err, 'TUNNEL'));
    assert.match(err.message, /connection refused/);
  });

  it('reads nothing before the consumer reads, so early errors are not lost', async () => {
    const api = await fakeApi(fx, (ws) => ws.send(frame(1, 'early failure')));
    const stream = await openPortForward(options(api));
    await sleep(100);
    assert.equal(stream.destroyed, false);
    stream.on('data', () => {});
    const [err] = await within(once(stream, 'error'), 2_000, 'error');
    assert.match(err.message, /early failure/);
  });

  it('ending the stream closes the WebSocket', async () => {
    let closed: Promise<unknown> | undefined;
    const api = await fakeApi(fx, (ws) => {
      closed = once(ws, 'close');
    });
    const stream = await openPortForward(options(api));
    stream.end();
    await eventually(() => closed !== undefined, 2_000, 'server socket');
    const [code] = (await within(closed!, 2_000, 'server close')) as [number];
    assert.equal(code, 1000);
  });

  it('a WebSocket close by the server ends the readable side after delivering the data', async () => {
    const api = await fakeApi(fx, (ws) => {
      ws.send(frame(0, 'last words'));
      ws.close(1000);
    });
    const stream = await openPortForward(options(api));
    const chunks: Buffer[] = [];
    const closed = once(stream, 'close');
    stream.on('data', (c) => chunks.push(c));
    await within(once(stream, 'end'), 2_000, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'last words');
    await within(closed, 2_000, 'close');
  });

  it('an abnormal close is an error', async () => {
    const api = await fakeApi(fx, (ws) => setTimeout(() => ws.terminate(), 50));
    const stream = await openPortForward(options(api));
    stream.resume();
    const [err] = await within(once(stream, 'error'), 2_000, 'error');
    assert.ok(isDevboxError(err, 'TUNNEL'));
  });

  it('garbage from the server errors the stream without an uncaught exception', async () => {
    for (const garbage of [Buffer.alloc(0), Buffer.from([7, 1, 2]), Buffer.from([0, 1, 2, 3])]) {
      const api = await fakeApi(fx, (ws) => ws.send(garbage), { sendPrefixes: false });
      const stream = await openPortForward(options(api));
      stream.resume();
      const [err] = await within(once(stream, 'error'), 2_000, 'error');
      assert.ok(isDevboxError(err, 'PROTOCOL'), String(err));
    }
  });

  it('keepalive: a server that stops answering pings is detected', async () => {
    const api = await fakeApi(fx, () => {}, { autoPong: false });
    const stream = await openPortForward(options(api, { keepaliveMs: 100 }));
    stream.resume();
    const [err] = await within(once(stream, 'error'), 2_000, 'keepalive error');
    assert.match(err.message, /pong/);
  });

  it('keepalive: an answering server keeps the stream open', async () => {
    const api = await fakeApi(fx, () => {});
    const stream: Duplex = await openPortForward(options(api, { keepaliveMs: 50 }));
    stream.resume();
    fx.add(() => {
      stream.destroy();
    });
    await sleep(400);
    assert.equal(stream.destroyed, false);
  });

  it('upgrade failures name their cause', async () => {
    const cases: [number, string, RegExp][] = [
      [401, 'FORBIDDEN', /rejected the token/],
      [403, 'FORBIDDEN', /create and get on pods\/portforward in namespace shop/],
      [404, 'NOT_FOUND', /pod api-0 not found in namespace shop/],
      [500, 'TUNNEL', /HTTP 500/],
    ];
    for (const [status, code, pattern] of cases) {
      const api = await fakeApi(fx, () => {}, { status });
      await assert.rejects(openPortForward(options(api)), (err) => {
        assert.ok(isDevboxError(err, code as never), `${status}: ${String(err)}`);
        assert.match((err as Error).message, pattern);
        assert.match((err as Error).message, new RegExp(`status ${status} from fake`));
        return true;
      });
    }
  });

  it('an unreachable API server is a TUNNEL error naming the address', async () => {
    const port = await fx.freePort();
    await assert.rejects(
      openPortForward({ server: `https://127.0.0.1:${port}`, namespace: 'n', pod: 'p', port: PORT }),
      (err) => isDevboxError(err, 'TUNNEL') && /cannot reach the API server/.test((err as Error).message),
    );
  });

  it('an aborted signal fails the open', async () => {
    const api = await fakeApi(fx, () => {});
    await assert.rejects(openPortForward(options(api, { signal: AbortSignal.abort() })), /aborted/);
  });
});
