import assert from 'node:assert/strict';
import http from 'node:http';
import { afterEach, describe, it } from 'node:test';
import { eventually, Fixtures, sleep } from '../tunnel/harness.js';
import {
  ALICE,
  agentFor,
  BOB,
  httpApp,
  personal,
  rawExchange,
  recordingLogger,
  request,
  sessionTo,
} from './http-fixtures.js';

describe('agent: HTTP/1.1 routing on filtered ports', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('routes each request of one keep-alive connection to its session or the app', async () => {
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice');
    const bob = await httpApp(fx, 'bob');
    const log = recordingLogger();
    const { agent, port } = await agentFor(fx, pod.port, log);
    await sessionTo(fx, agent, personal(ALICE), alice.port, 'alice');
    await sessionTo(fx, agent, personal(BOB), bob.port, 'bob');

    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    fx.add(() => keepAlive.destroy());
    const plan: [Record<string, string>, string][] = [
      [{ 'x-devbox-session': ALICE }, 'alice'],
      [{}, 'pod'],
      [{ baggage: `user=7,devbox-session=${BOB}` }, 'bob'],
      [{ 'x-devbox-session': 'not-a-key-of-anyone-here' }, 'pod'],
      [{ 'x-devbox-session': ALICE }, 'alice'],
      [{ baggage: `devbox-session=${BOB}` }, 'bob'],
    ];
    let reused = 0;
    for (const [i, [headers, who]] of plan.entries()) {
      const res = await request(port, { path: `/r${i}`, headers, agent: keepAlive });
      assert.equal(res.body, `${who} GET /r${i}`);
      if (res.reused) reused++;
    }
    assert.equal(reused, plan.length - 1, 'one client connection carried every request');

    const seen = [...pod.seen, ...alice.seen, ...bob.seen];
    for (const req of seen) {
      assert.equal(req.headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(req.headers.forwarded, 'for=127.0.0.1');
    }
    const stats = agent.stats();
    assert.equal(stats.bySession?.alice?.routed, 2);
    assert.equal(stats.bySession?.bob?.routed, 2);
    assert.equal(stats.totals.toApp, 2);
    assert.ok(!log.lines.join('\n').includes(ALICE) && !log.lines.join('\n').includes(BOB), 'no key in logs');
  });

  it('answers pipelined requests in order although they go to different places', async () => {
    const pod = await httpApp(fx, 'pod', (req, res) => {
      // The app answers its request late: the session's answer must still wait its turn.
      if (req.url === '/slow') {
        setTimeout(() => res.end('pod slow'), 200);
        return true;
      }
      return false;
    });
    const alice = await httpApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod.port);
    await sessionTo(fx, agent, personal(ALICE), alice.port);
    const requests =
      'GET /slow HTTP/1.1\r\nHost: x\r\n\r\n' +
      `GET /a HTTP/1.1\r\nHost: x\r\nX-Devbox-Session: ${ALICE}\r\n\r\n` +
      'GET /p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const text = await rawExchange(port, requests);
    const bodies = text
      .split('HTTP/1.1 200 OK')
      .slice(1)
      .map((r) => r.split('\r\n\r\n')[1]);
    assert.deepEqual(bodies, ['pod slow', 'alice GET /a', 'pod GET /p']);
  });

  it('carries chunked bodies and Expect: 100-continue to a session', async () => {
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod.port);
    await sessionTo(fx, agent, personal(ALICE), alice.port);
    const chunked =
      `POST /up HTTP/1.1\r\nHost: x\r\nX-Devbox-Session: ${ALICE}\r\nTransfer-Encoding: chunked\r\n\r\n` +
      '5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n';
    const text = await rawExchange(port, chunked, (t) => t.includes('alice POST /up hello world'));
    assert.match(text, /alice POST \/up hello world/);

    const net = await import('node:net');
    const socket = net.connect({ host: '127.0.0.1', port });
    fx.add(() => {
      socket.destroy();
    });
    let got = '';
    socket.on('data', (c: Buffer) => {
      got += c.toString();
    });
    socket.write(
      `PUT /big HTTP/1.1\r\nHost: x\r\nX-Devbox-Session: ${ALICE}\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n`,
    );
    await eventually(() => got.startsWith('HTTP/1.1 100 Continue'), 3_000, '100 Continue from the session');
    socket.write('body');
    await eventually(() => got.includes('alice PUT /big body'), 3_000, 'the final answer');
  });

  it('serves the request from the pod when the session is up but its local app is not', async () => {
    const pod = await httpApp(fx, 'pod');
    const { agent, port } = await agentFor(fx, pod.port);
    const downPort = await fx.freePort();
    await sessionTo(fx, agent, personal(ALICE), downPort);
    const res = await request(port, { path: '/x', headers: { 'x-devbox-session': ALICE } });
    assert.equal(res.body, 'pod GET /x');
    assert.ok(agent.stats().totals.localRefused >= 1);
  });

  it('routes by header regex and path prefix, header filters first', async () => {
    const pod = await httpApp(fx, 'pod');
    const byPath = await httpApp(fx, 'path');
    const byHeader = await httpApp(fx, 'header');
    const { agent, port } = await agentFor(fx, pod.port);
    await sessionTo(fx, agent, { mode: 'filtered', headers: [], pathPrefix: '/api/' }, byPath.port);
    await sessionTo(
      fx,
      agent,
      { mode: 'filtered', headers: [{ name: 'x-tenant', value: '^acme-[0-9]+$', regex: true }] },
      byHeader.port,
    );
    assert.equal((await request(port, { path: '/api/1' })).body, 'path GET /api/1');
    assert.equal(
      (await request(port, { path: '/api/2', headers: { 'x-tenant': 'acme-7' } })).body,
      'header GET /api/2',
    );
    assert.equal(
      (await request(port, { path: '/web', headers: { 'x-tenant': 'acme-x' } })).body,
      'pod GET /web',
    );
  });

  it('upgrades to a WebSocket with the session the upgrade request matches', async () => {
    const { WebSocket, WebSocketServer } = await import('ws');
    const wsApp = async (name: string) => {
      const server = http.createServer();
      const wss = new WebSocketServer({ server });
      wss.on('connection', (ws, req) => {
        ws.on('message', (m) => ws.send(`${name}:${m}:${req.headers['x-forwarded-for']}`));
      });
      const { listenOn } = await import('./http-fixtures.js');
      fx.add(() => wss.close());
      return listenOn(fx, server);
    };
    const podPort = await wsApp('pod');
    const alicePort = await wsApp('alice');
    const { agent, port } = await agentFor(fx, podPort);
    await sessionTo(fx, agent, personal(ALICE), alicePort);
    const talk = async (headers: Record<string, string>) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/chat`, { headers });
      fx.add(() => ws.terminate());
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      const answers: string[] = [];
      for (const m of ['one', 'two']) {
        ws.send(m);
        answers.push(String((await new Promise((resolve) => ws.once('message', resolve))) as Buffer));
      }
      ws.close();
      return answers;
    };
    assert.deepEqual(await talk({ 'x-devbox-session': ALICE }), [
      'alice:one:127.0.0.1',
      'alice:two:127.0.0.1',
    ]);
    assert.deepEqual(await talk({}), ['pod:one:127.0.0.1', 'pod:two:127.0.0.1']);
  });

  it('answers an h2c upgrade as plain HTTP/1.1', async () => {
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod.port);
    await sessionTo(fx, agent, personal(ALICE), alice.port);
    const text = await rawExchange(
      port,
      `GET /u HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\nX-Devbox-Session: ${ALICE}\r\n\r\n`,
      (t) => t.includes('alice GET /u'),
    );
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.equal(alice.seen[0]?.headers.upgrade, undefined);
  });

  it('answers malformed HTTP as a server would, on that connection only', async () => {
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod.port);
    await sessionTo(fx, agent, personal(ALICE), alice.port);
    const badHeader = await rawExchange(port, 'GET / HTTP/1.1\r\nHost x\r\n\r\n');
    assert.match(badHeader, /^HTTP\/1\.1 400 /);
    const huge = await rawExchange(
      port,
      `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`,
    );
    assert.match(huge, /^HTTP\/1\.1 431 /);
    const badChunk = await rawExchange(
      port,
      `POST / HTTP/1.1\r\nHost: x\r\nX-Devbox-Session: ${ALICE}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n`,
    );
    assert.match(badChunk, /^HTTP\/1\.1 400 /);
    assert.ok(agent.stats().totals.protocolErrors >= 3);
    assert.equal(
      (await request(port, { path: '/ok', headers: { 'x-devbox-session': ALICE } })).body,
      'alice GET /ok',
    );
  });

  it('passes connections that are not HTTP to the app untouched', async () => {
    const echo = await fx.echoServer();
    const alice = await httpApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, echo);
    await sessionTo(fx, agent, personal(ALICE), alice.port);
    const tlsHello = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]);
    const back = await rawExchange(port, tlsHello, (t) => t.length >= tlsHello.length);
    assert.deepEqual(Buffer.from(back, 'latin1'), tlsHello);
    assert.equal(agent.stats().totals.notHttp, 1);
  });

  it('answers from the request rewriter before matching', async () => {
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice');
    const { startAgent } = await import('../../../src/agent/agent.js');
    const { AGENT_DEFAULTS } = await import('../../../src/agent/config.js');
    const { TEST_TOKEN } = await import('../tunnel/harness.js');
    const agent = await startAgent(
      {
        ...AGENT_DEFAULTS,
        token: TEST_TOKEN,
        tunnelPort: 0,
        intercepts: [{ listenPort: 0, appPort: pod.port }],
        interceptHost: '127.0.0.1',
        shutdownGraceMs: 200,
      },
      undefined,
      {
        rewriter: {
          rewrite(req) {
            if (req.path === '/login') return { status: 302, headers: { location: '/' }, body: '' };
            const cookie = String(req.headers.cookie ?? '');
            const key = /devbox=([\w-]+)/.exec(cookie)?.[1];
            if (key) req.headers.baggage = `devbox-session=${key}`;
            return undefined;
          },
        },
      },
    );
    fx.add(() => agent.close());
    await sessionTo(fx, agent, personal(ALICE), alice.port);
    const port = agent.intercepts[0]!.listenPort;
    const login = await request(port, { path: '/login' });
    assert.equal(login.status, 302);
    assert.equal(
      (await request(port, { path: '/c', headers: { cookie: `devbox=${ALICE}` } })).body,
      'alice GET /c',
    );
    assert.equal((await request(port, { path: '/c' })).body, 'pod GET /c');
  });

  it('streams a 256 MB response through a personal session without holding it', async () => {
    const size = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024, 120);
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice', (req, res) => {
      if (req.url !== '/big') return false;
      res.writeHead(200, { 'content-length': String(size) });
      let left = size;
      const pump = () => {
        while (left > 0) {
          left -= chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
        res.end();
      };
      pump();
      return true;
    });
    const { agent, port } = await agentFor(fx, pod.port);
    await sessionTo(fx, agent, personal(ALICE), alice.port);
    const before = process.memoryUsage();
    let peakRss = before.rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage.rss());
    }, 20);
    fx.add(() => clearInterval(sampler));
    const received = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/big', headers: { 'x-devbox-session': ALICE } }, (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
          });
          res.on('end', () => resolve(n));
          res.on('error', reject);
        })
        .on('error', reject);
    });
    clearInterval(sampler);
    assert.equal(received, size);
    // Caller, agent, tunnel client and both apps share this process, whose heap and buffers grow
    // with load (97 MB seen on Node 24): together they stay well below the 256 MB that holding the
    // response whole would add.
    const growthMb = (peakRss - before.rss) / 1024 / 1024;
    assert.ok(growthMb < 160, `RSS grew by ${growthMb.toFixed(0)} MB while 256 MB went through`);
  });

  it('keeps a caller on the pod app undelayed while a mirror session takes 10 s per copy', async () => {
    const pod = await httpApp(fx, 'pod');
    let copies = 0;
    const slowMirror = await httpApp(fx, 'mirror', (_req, res) => {
      copies++;
      const timer = setTimeout(() => res.end('late'), 10_000);
      res.on('close', () => clearTimeout(timer));
      return true;
    });
    const { agent, port } = await agentFor(fx, pod.port);
    await sessionTo(fx, agent, { mode: 'mirror', headers: [], pathPrefix: '/m' }, slowMirror.port, 'watcher');
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    fx.add(() => keepAlive.destroy());
    const latencies: number[] = [];
    for (let i = 0; i < 30; i++) {
      const started = performance.now();
      const res = await request(port, { path: `/m/${i}`, method: 'POST', body: `b${i}`, agent: keepAlive });
      latencies.push(performance.now() - started);
      assert.equal(res.body, `pod POST /m/${i} b${i}`);
    }
    latencies.sort((a, b) => a - b);
    assert.ok(latencies[latencies.length - 1]! < 1_000, `slowest caller ${latencies.at(-1)} ms`);
    await eventually(() => copies >= 16, 3_000, 'copies reached the mirror');
    const s = agent.stats().bySession?.watcher;
    assert.equal(s?.mirrored, 16);
    assert.equal(s?.dropped, 14);
    assert.equal(agent.stats().totals.toApp, 30);
    await sleep(10);
  });
});
