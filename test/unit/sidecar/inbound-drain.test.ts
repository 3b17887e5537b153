import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { InboundDrain } from '../../../src/sidecar/inbound-drain.js';
import { joinStreams } from '../../../src/tunnel/index.js';

describe('draining the local app', () => {
  let app: http.Server;
  let entry: net.Server;
  let drain: InboundDrain;
  const port = (s: net.Server) => (s.address() as net.AddressInfo).port;

  before(async () => {
    // The app answers at once, or after ?delay= ms.
    app = http.createServer((req, res) => {
      const delay = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('delay') ?? 0);
      setTimeout(() => res.end('app'), delay);
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    // What the sidecar does with an inbound stream: joined to the app, followed by the drain.
    entry = net.createServer({ allowHalfOpen: true }, (socket) => {
      const local = net.connect({ host: '127.0.0.1', port: port(app), allowHalfOpen: true });
      local.once('connect', () => {
        drain.track(socket, local);
        void joinStreams(socket, local);
      });
    });
    await new Promise<void>((r) => entry.listen(0, '127.0.0.1', r));
  });
  after(() => {
    entry.close();
    app.close();
  });

  const client = () => new http.Agent({ keepAlive: true, maxSockets: 1 });
  const ask = (agent: http.Agent, path = '/') =>
    new Promise<{ body: string; socket: net.Socket }>((resolve, reject) =>
      http
        .get({ host: '127.0.0.1', port: port(entry), path, agent }, (res) => {
          // The agent takes the socket back once the answer ended.
          const socket = res.socket;
          let body = '';
          res.on('data', (d) => (body += d));
          res.on('end', () => resolve({ body, socket }));
        })
        .on('error', reject),
    );

  it('closes a kept-alive connection at its first quiet moment after the answer; the client reconnects', async () => {
    drain = new InboundDrain();
    const agent = client();
    try {
      const first = await ask(agent);
      const closed = new Promise((r) => first.socket.once('close', r));
      const started = Date.now();
      assert.deepEqual(await drain.drain(5000), { closed: 1, left: 0 });
      assert.ok(Date.now() - started < 2000, 'drained within the quiet period, not the timeout');
      await closed;
      assert.ok(drain.draining);
      drain.resume();
      assert.equal(drain.draining, false);
      const second = await ask(agent);
      assert.equal(second.body, 'app');
      assert.notEqual(second.socket, first.socket);
    } finally {
      agent.destroy();
    }
  });

  it('leaves a connection waiting for its answer until the answer came', async () => {
    drain = new InboundDrain();
    const agent = client();
    try {
      await ask(agent);
      const slow = ask(agent, '/?delay=600');
      await new Promise((r) => setTimeout(r, 100));
      const drained = drain.drain(5000);
      assert.equal((await slow).body, 'app', 'the answer came whole');
      assert.deepEqual(await drained, { closed: 1, left: 0 });
    } finally {
      drain.resume();
      agent.destroy();
    }
  });

  it('gives up waiting after the timeout, naming what is left', async () => {
    drain = new InboundDrain();
    const socket = net.connect(port(entry), '127.0.0.1');
    await new Promise((r) => socket.once('connect', r));
    socket.write('GET /?delay=2000 HTTP/1.1\r\nhost: x\r\n\r\n');
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(await drain.drain(200), { closed: 0, left: 1 });
    drain.resume();
    socket.destroy();
  });
});
