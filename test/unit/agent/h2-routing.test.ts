import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { eventually, Fixtures } from '../tunnel/harness.js';
import { ALICE, agentFor, BOB, h2App, httpApp, personal, sessionTo } from './http-fixtures.js';

/** An h2c app that answers `<name> <path>` with a trailer, or echoes a bidi stream message by message. */
function namedApp(fx: Fixtures, name: string): Promise<number> {
  return h2App(fx, (stream, headers) => {
    if (headers[':path'] === '/echo.Echo/Chat') {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-who': name }));
      stream.on('data', (chunk: Buffer) => stream.write(Buffer.from(`${name}:${chunk}`)));
      stream.on('end', () => stream.end());
      return;
    }
    stream.respond(
      { ':status': 200, 'x-forwarded-for-seen': String(headers['x-forwarded-for']) },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => stream.sendTrailers({ 'x-trailer': `${name}-done` }));
    stream.end(`${name} ${headers[':path']}`);
  });
}

function call(session: http2.ClientHttp2Session, path: string, headers: Record<string, string> = {}) {
  return new Promise<{
    body: string;
    headers: http2.IncomingHttpHeaders;
    trailers: http2.IncomingHttpHeaders;
  }>((resolve, reject) => {
    const req = session.request({ ':path': path, ...headers });
    let body = '';
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => {
      responseHeaders = h;
    });
    req.on('trailers', (t) => {
      trailers = t;
    });
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
    });
    req.on('end', () => resolve({ body, headers: responseHeaders, trailers }));
    req.on('error', reject);
  });
}

describe('agent: HTTP/2 routing on filtered ports', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('routes each stream of one h2c connection by its own headers, trailers included', async () => {
    const pod = await namedApp(fx, 'pod');
    const alice = await namedApp(fx, 'alice');
    const bob = await namedApp(fx, 'bob');
    const { agent, port } = await agentFor(fx, pod);
    await sessionTo(fx, agent, personal(ALICE), alice, 'alice');
    await sessionTo(fx, agent, personal(BOB), bob, 'bob');
    const client = http2.connect(`http://127.0.0.1:${port}`);
    fx.add(() => {
      client.destroy();
    });
    const results = await Promise.all([
      call(client, '/1', { 'x-devbox-session': ALICE }),
      call(client, '/2'),
      call(client, '/3', { baggage: `devbox-session=${BOB}` }),
      call(client, '/4', { 'x-devbox-session': ALICE }),
    ]);
    assert.deepEqual(
      results.map((r) => [r.body, r.trailers['x-trailer']]),
      [
        ['alice /1', 'alice-done'],
        ['pod /2', 'pod-done'],
        ['bob /3', 'bob-done'],
        ['alice /4', 'alice-done'],
      ],
    );
    assert.equal(results[1]!.headers['x-forwarded-for-seen'], '127.0.0.1');
    const stats = agent.stats();
    assert.equal(stats.bySession?.alice?.routed, 2);
    assert.equal(stats.bySession?.bob?.routed, 1);
    assert.equal(stats.totals.toApp, 1);
  });

  it('streams a gRPC-like bidi call both ways through a session', async () => {
    const pod = await namedApp(fx, 'pod');
    const alice = await namedApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod);
    await sessionTo(fx, agent, personal(ALICE), alice);
    const client = http2.connect(`http://127.0.0.1:${port}`);
    fx.add(() => {
      client.destroy();
    });
    const req = client.request({
      ':method': 'POST',
      ':path': '/echo.Echo/Chat',
      'content-type': 'application/grpc',
      te: 'trailers',
      'x-devbox-session': ALICE,
    });
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.once('trailers', resolve));
    const next = () => new Promise<string>((resolve) => req.once('data', (d: Buffer) => resolve(String(d))));
    // Each answer comes before the next message is sent: nothing waits for the end of the call.
    for (const m of ['a', 'b', 'c']) {
      const answer = next();
      req.write(m);
      assert.equal(await answer, `alice:${m}`);
    }
    req.end();
    assert.equal((await trailers)['grpc-status'], '0');
    assert.equal((await trailers)['x-who'], 'alice');
  });

  it('sends a copy of a matching stream to a mirror session as HTTP/1.1 and answers from the app', async () => {
    const pod = await namedApp(fx, 'pod');
    const copies: string[] = [];
    const mirror = await httpApp(fx, 'mirror', (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => {
        body += d;
      });
      req.on('end', () => {
        copies.push(`${req.method} ${req.url} ${req.headers.host} ${body}`);
        res.end('discarded');
      });
      return true;
    });
    const { agent, port } = await agentFor(fx, pod);
    await sessionTo(fx, agent, { mode: 'mirror', headers: [], pathPrefix: '/m' }, mirror.port, 'watcher');
    const client = http2.connect(`http://127.0.0.1:${port}`);
    fx.add(() => {
      client.destroy();
    });
    const req = client.request({ ':method': 'POST', ':path': '/m/1' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
    });
    req.end('payload');
    await new Promise((resolve) => req.once('end', resolve));
    assert.equal(body, 'pod /m/1');
    await eventually(() => copies.length === 1, 3_000, 'the copy reached the mirror');
    assert.match(copies[0]!, /^POST \/m\/1 127\.0\.0\.1:\d+ payload$/);
    assert.equal(agent.stats().bySession?.watcher?.mirrored, 1);
  });

  it('answers an HTTP/2 protocol error with GOAWAY on that connection only', async () => {
    const pod = await namedApp(fx, 'pod');
    const alice = await namedApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod);
    await sessionTo(fx, agent, personal(ALICE), alice);
    const socket = net.connect({ host: '127.0.0.1', port });
    fx.add(() => {
      socket.destroy();
    });
    let got = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
    });
    socket.on('error', () => {});
    const hasGoaway = () => {
      for (let i = 0; i + 9 <= got.length; i += 9 + got.readUIntBE(i, 3)) {
        if (got[i + 3] === 0x7) return got.readUInt32BE(i + 13) === http2.constants.NGHTTP2_PROTOCOL_ERROR;
      }
      return false;
    };
    // The preface, then a DATA frame on stream 0, which RFC 9113 makes a connection error.
    socket.write(Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'));
    socket.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    socket.write(Buffer.from([0, 0, 1, 0, 0, 0, 0, 0, 0, 0x61]));
    await eventually(hasGoaway, 3_000, 'GOAWAY (PROTOCOL_ERROR) from the agent');
    const client = http2.connect(`http://127.0.0.1:${port}`);
    fx.add(() => {
      client.destroy();
    });
    assert.equal((await call(client, '/after', { 'x-devbox-session': ALICE })).body, 'alice /after');
  });
});
