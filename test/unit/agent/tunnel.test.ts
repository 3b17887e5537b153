import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex, Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import tar from 'tar-stream';
import { HAND_OVER_PATIENCE_MS, HAND_OVER_QUIET_MS } from '../../../src/agent/intercept.js';
import { HELLO_TIMEOUT_MS } from '../../../src/agent/tunnel-server.js';
import { createInboundHandler, newInboundStats } from '../../../src/sidecar/inbound.js';
import type { TunnelClient } from '../../../src/tunnel/client.js';
import { StreamRefusedError } from '../../../src/tunnel/errors.js';
import { abortStream, joinStreams } from '../../../src/tunnel/pipe.js';
import { HEADERS, PATHS, PROTOCOL_VERSION } from '../../../src/tunnel/protocol.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { fuzzAsync } from '../../support/fuzz.js';
import {
  closeOf,
  eventually,
  exchange,
  Fixtures,
  readAll,
  sleep,
  TEST_TOKEN,
  within,
} from '../tunnel/harness.js';

/** Writes `data` and reads exactly `data.length` bytes back. */
async function roundTrip(stream: Duplex, data: string): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const done = new Promise<void>((resolve, reject) => {
    const onData = (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= Buffer.byteLength(data)) {
        stream.off('data', onData);
        resolve();
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
  });
  stream.write(data);
  await done;
  return Buffer.concat(chunks).toString();
}

/** A raw HTTP/2 session to the agent, for requests the client API never sends. */
async function rawSession(fx: Fixtures, port: number): Promise<ClientHttp2Session> {
  const socket = await fx.socketTo(port);
  const session = http2.connect('http://devbox', { createConnection: () => socket });
  session.on('error', () => {});
  fx.add(() => {
    session.destroy();
  });
  return session;
}

function response(stream: ClientHttp2Stream): Promise<IncomingHttpHeaders> {
  return within(once(stream, 'response') as Promise<[IncomingHttpHeaders]>, 5_000, 'response').then(
    ([h]) => h,
  );
}

/**
 * Opens a session by hand, proving the token as the protocol says (the proofs computed here, not
 * with the code under test); resolves once the agent's hello has arrived (or with the refusal).
 */
async function rawHello(session: ClientHttp2Session, token = TEST_TOKEN, version = String(PROTOCOL_VERSION)) {
  const nonce = randomBytes(32).toString('base64url');
  const control = session.request(
    { ':method': 'POST', ':path': PATHS.session, [HEADERS.protocol]: version, [HEADERS.sidecarNonce]: nonce },
    { endStream: false },
  );
  control.on('error', () => {});
  const headers = await response(control);
  if (Number(headers[':status']) !== 200) return { control, headers };
  const agentNonce = String(headers[HEADERS.agentNonce]);
  const proof = createHmac('sha256', token)
    .update(`devbox-sidecar-proof\0${agentNonce}\0${nonce}`)
    .digest('base64url');
  control.write(`${JSON.stringify({ type: 'session-proof', proof })}\n`);
  await within(once(control, 'data'), 5_000, 'hello');
  return { control, headers };
}

/** A fake DNS server on one loopback port: UDP answers (optionally truncated), TCP answers in full. */
async function fakeDns(fx: Fixtures, opts: { truncateUdp?: boolean } = {}) {
  const answer = (query: Buffer, via: string) => {
    const out = Buffer.concat([query, Buffer.from(`answer-via-${via}`)]);
    out[2] = out[2]! | 0x80;
    if (via === 'udp' && opts.truncateUdp) out[2] = out[2]! | 0x02;
    return out;
  };
  const queries: string[] = [];
  for (let attempt = 0; ; attempt++) {
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const port = udp.address().port;
    const tcp = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.once('data', (buf: Buffer) => {
        queries.push('tcp');
        const query = buf.subarray(2, 2 + buf.readUInt16BE(0));
        const a = answer(query, 'tcp');
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(a.length);
        socket.end(Buffer.concat([prefix, a]));
      });
    });
    const ok = await new Promise<boolean>((resolve) => {
      tcp.once('error', () => resolve(false));
      tcp.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (!ok) {
      udp.close();
      if (attempt > 20) throw new Error('no port free for UDP and TCP');
      continue;
    }
    udp.on('message', (msg, rinfo) => {
      queries.push('udp');
      udp.send(answer(msg, 'udp'), rinfo.port, rinfo.address);
    });
    fx.add(() => new Promise<void>((resolve) => udp.close(() => resolve())));
    fx.add(() => new Promise<void>((resolve) => tcp.close(() => resolve())));
    return { port, queries };
  }
}

async function resolvConf(fx: Fixtures, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'devbox-agent-test-'));
  fx.add(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'resolv.conf');
  await writeFile(path, text);
  return path;
}

const QUERY = Buffer.from(
  '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03api\x00\x00\x01\x00\x01',
  'latin1',
);

describe('tunnel mux (agent ⇄ client over loopback TCP)', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  describe('sessions', () => {
    it('hello carries the protocol version and the bound intercepts', async () => {
      const app = await fx.bannerServer('app');
      const agent = await fx.agent({ intercepts: [{ listenPort: 0, appPort: app }] });
      const client = await fx.client(agent);
      assert.equal(client.hello.protocol, PROTOCOL_VERSION);
      assert.deepEqual(client.hello.intercepts, agent.intercepts);
      assert.notEqual(agent.intercepts[0]!.listenPort, 0);
    });

    it("hello tells the API server's Service address the pod's env names", async () => {
      const kubernetesService = { host: '10.96.0.1', port: 443 };
      const told = await fx.client(await fx.agent({ kubernetesService }));
      assert.deepEqual(told.hello.kubernetesService, kubernetesService);
      const untold = await fx.client(await fx.agent());
      assert.equal(untold.hello.kubernetesService, undefined);
    });

    it('a sidecar holding another token is refused before it reveals anything', async () => {
      const agent = await fx.agent();
      const socket = await fx.socketTo(agent.tunnelPort);
      const { TunnelClient } = await import('../../../src/tunnel/client.js');
      await assert.rejects(TunnelClient.connect(socket, { token: 'wrong' }), (err) => {
        assert.ok(isDevboxError(err, 'FORBIDDEN'), String(err));
        assert.match((err as Error).message, /did not prove it holds the session token/);
        return true;
      });
      // and no stream works on a connection without a session
      const session = await rawSession(fx, agent.tunnelPort);
      const req = session.request({ ':method': 'POST', ':path': PATHS.tcp, [HEADERS.target]: '127.0.0.1:1' });
      req.on('error', () => {});
      assert.equal((await response(req))[':status'], 401);
    });

    it('a sidecar whose proof is wrong gets no hello and loses its connection', async () => {
      const agent = await fx.agent();
      const session = await rawSession(fx, agent.tunnelPort);
      const closed = closeOf(session);
      const nonce = randomBytes(32).toString('base64url');
      const control = session.request(
        {
          ':method': 'POST',
          ':path': PATHS.session,
          [HEADERS.protocol]: String(PROTOCOL_VERSION),
          [HEADERS.sidecarNonce]: nonce,
        },
        { endStream: false },
      );
      control.on('error', () => {});
      const received: Buffer[] = [];
      control.on('data', (chunk: Buffer) => received.push(chunk));
      assert.equal((await response(control))[':status'], 200);
      control.write(`${JSON.stringify({ type: 'session-proof', proof: 'A'.repeat(43) })}\n`);
      await within(closed, 2_000, 'connection closed');
      assert.equal(Buffer.concat(received).length, 0, 'no hello');
    });

    it('a sidecar of protocol 1 that sends the token itself is refused for its version, unheard', async () => {
      const agent = await fx.agent();
      const session = await rawSession(fx, agent.tunnelPort);
      const control = session.request(
        { ':method': 'POST', ':path': PATHS.session, [HEADERS.protocol]: '1', 'devbox-token': TEST_TOKEN },
        { endStream: false },
      );
      control.on('error', () => {});
      const headers = await response(control);
      assert.equal(headers[':status'], 426);
      assert.match(String(headers[HEADERS.error]), /sidecar speaks version 1, the agent speaks version 2/);
    });

    it('a version mismatch is refused with a message naming both versions', async () => {
      const agent = await fx.agent();
      const session = await rawSession(fx, agent.tunnelPort);
      const { headers } = await rawHello(session, TEST_TOKEN, '99');
      assert.equal(headers[':status'], 426);
      const text = String(headers[HEADERS.error]);
      assert.match(text, /\b99\b/);
      assert.match(text, new RegExp(`\\b${PROTOCOL_VERSION}\\b`));
    });

    it('stats count streams', async () => {
      const echo = await fx.echoServer();
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const stream = await client.openTcp('127.0.0.1', echo);
      const stats = await client.stats();
      assert.equal(stats.sessions, 1);
      assert.equal(stats.open.tcp, 1);
      assert.equal(stats.totals.tcpOpened, 1);
      stream.destroy();
    });

    it('shutdown drains: open streams finish, new ones are refused, then the tunnel closes', async () => {
      const echo = await fx.echoServer();
      const agent = await fx.agent({ shutdownGraceMs: 3_000 });
      const client = await fx.client(agent);
      const stream = await client.openTcp('127.0.0.1', echo);
      const goaway = once(client, 'goaway');
      const clientClosed = closeOf(client);
      const started = Date.now();
      const stopped = agent.close();
      await within(goaway, 1_000, 'goaway');
      assert.equal(client.draining, true);
      assert.equal(await roundTrip(stream, 'still served'), 'still served');
      await assert.rejects(client.openTcp('127.0.0.1', echo));
      stream.end();
      await within(stopped, 2_000, 'agent stops once the stream ends');
      await within(clientClosed, 1_000, 'client closed');
      assert.ok(Date.now() - started < 2_500, 'did not wait for the whole grace period');
    });

    // Regression: the agent left its half of the control stream open, so a client's graceful close
    // (what `up` does after copying volume contents) waited for the agent's 15 s silence timeout.
    it("the client's graceful close completes at once, without waiting for the agent's timeout", async () => {
      const agent = await fx.agent();
      const client = await fx.client(agent, { pingIntervalMs: 0 });
      await within(client.close(60_000), 1_000, 'graceful close');
      assert.equal(client.closed, true);
    });

    it('closing the agent sends GOAWAY and the client reports close', async () => {
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const closed = closeOf(client);
      await agent.close();
      await within(closed, 2_000, 'client close');
      assert.equal(client.closed, true);
      await assert.rejects(client.openTcp('127.0.0.1', 1), (e) => isDevboxError(e, 'TUNNEL'));
    });
  });

  describe('outbound TCP', () => {
    it('echoes bytes', async () => {
      const echo = await fx.echoServer();
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const stream = await client.openTcp('127.0.0.1', echo);
      assert.equal(await roundTrip(stream, 'ping'), 'ping');
      assert.equal(await roundTrip(stream, 'pong'.repeat(10_000)), 'pong'.repeat(10_000));
      stream.destroy();
    });

    it('half-close: our FIN reaches the target, which still answers', async () => {
      const target = await fx.tcpServer((socket) => {
        let n = 0;
        socket.on('data', (d: Buffer) => {
          n += d.length;
        });
        socket.on('end', () => socket.end(`got ${n} bytes after your FIN`));
      });
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const stream = await client.openTcp('127.0.0.1', target);
      stream.end('abcdef');
      assert.equal((await within(readAll(stream), 5_000, 'answer')).toString(), 'got 6 bytes after your FIN');
    });

    it('half-close: the target FIN ends our readable side while we keep writing', async () => {
      const received: Buffer[] = [];
      const target = await fx.tcpServer((socket) => {
        socket.on('data', (d: Buffer) => received.push(d));
        socket.end('bye');
      });
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const stream = await client.openTcp('127.0.0.1', target);
      assert.equal((await readAll(stream)).toString(), 'bye');
      stream.end('still here');
      await eventually(
        () => Buffer.concat(received).toString() === 'still here',
        2_000,
        'late write arrives',
      );
    });

    it('a refused target fails only that stream', async () => {
      const echo = await fx.echoServer();
      const closedPort = await fx.freePort();
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const good = await client.openTcp('127.0.0.1', echo);
      await assert.rejects(client.openTcp('127.0.0.1', closedPort), (err) => {
        assert.ok(err instanceof StreamRefusedError, String(err));
        assert.equal(err.remoteCode, 'ECONNREFUSED');
        assert.equal(err.status, 502);
        assert.match(err.message, new RegExp(`127.0.0.1:${closedPort}`));
        return true;
      });
      assert.equal(client.closed, false);
      assert.equal(await roundTrip(good, 'still fine'), 'still fine');
      const again = await client.openTcp('127.0.0.1', echo);
      assert.equal(await roundTrip(again, 'new one'), 'new one');
      good.destroy();
      again.destroy();
    });

    it('a reset by the target resets the stream; other streams live on', async () => {
      const echo = await fx.echoServer();
      const resetter = await fx.tcpServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const good = await client.openTcp('127.0.0.1', echo);
      const bad = await client.openTcp('127.0.0.1', resetter);
      bad.on('error', () => {});
      bad.resume();
      bad.write('x');
      await within(closeOf(bad), 2_000, 'reset');
      assert.notEqual((bad as ClientHttp2Stream).rstCode, http2.constants.NGHTTP2_NO_ERROR);
      assert.equal(await roundTrip(good, 'ok'), 'ok');
      good.destroy();
    });

    it('carries many concurrent streams', async () => {
      const echo = await fx.echoServer();
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const payload = Buffer.alloc(64 * 1024);
      for (let i = 0; i < payload.length; i++) payload[i] = i % 251;
      const results = await within(
        Promise.all(
          Array.from({ length: 300 }, async () => {
            const stream = await client.openTcp('127.0.0.1', echo);
            stream.end(payload);
            return readAll(stream);
          }),
        ),
        20_000,
        '300 streams',
      );
      for (const r of results) assert.ok(r.equals(payload));
      await eventually(() => agent.stats().open.tcp === 0, 2_000, 'all streams closed at the agent');
      assert.equal(agent.stats().totals.tcpOpened, 300);
    });

    it('a paused reader on one stream does not stall the others', async () => {
      const echo = await fx.echoServer();
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const stalled = await client.openTcp('127.0.0.1', echo);
      // Never read `stalled`: its echo fills its window, then the echo server, then our writes block.
      const chunk = Buffer.alloc(1024 * 1024, 1);
      let writtenStalled = 0;
      let blocked = false;
      const writer = (async () => {
        for (let i = 0; i < 256; i++) {
          writtenStalled += chunk.length;
          if (!stalled.write(chunk)) {
            const drained = await Promise.race([
              once(stalled, 'drain').then(() => true),
              sleep(1_000).then(() => false),
            ]);
            if (!drained) {
              blocked = true;
              return;
            }
          }
        }
      })();
      await writer;
      assert.ok(blocked, `the unread stream is held back by flow control (wrote ${writtenStalled} bytes)`);
      const other = await within(
        client.openTcp('127.0.0.1', echo),
        2_000,
        'open while another stream is stalled',
      );
      for (let i = 0; i < 20; i++) {
        assert.equal(await within(roundTrip(other, `msg ${i}`), 1_000, 'round trip'), `msg ${i}`);
      }
      const big = 'z'.repeat(4 * 1024 * 1024);
      assert.equal((await within(roundTrip(other, big), 5_000, '4 MiB round trip')).length, big.length);
      stalled.destroy();
      other.destroy();
    });
  });

  describe('UDP', () => {
    it('echoes datagrams, boundaries kept', async () => {
      const port = await fx.udpEchoServer();
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const flow = await client.udpFlow('127.0.0.1', port);
      const got: Buffer[] = [];
      flow.on('message', (m: Buffer) => got.push(m));
      for (const m of ['one', 'two', 'x'.repeat(1400)]) assert.ok(flow.send(Buffer.from(m)));
      await eventually(() => got.length === 3, 2_000, 'three datagrams');
      assert.deepEqual(
        got.map((g) => g.toString()),
        ['one', 'two', 'x'.repeat(1400)],
      );
      flow.close();
    });

    it('a flow ends after its idle timeout', async () => {
      const port = await fx.udpEchoServer();
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const flow = await client.udpFlow('127.0.0.1', port, { idleMs: 1_000 });
      const started = Date.now();
      await within(closeOf(flow), 3_000, 'idle close');
      assert.ok(Date.now() - started >= 900);
      assert.equal(flow.send(Buffer.from('late')), false);
    });
  });

  describe('DNS relay', () => {
    it('relays a query over UDP to the resolv.conf nameserver', async () => {
      const dns = await fakeDns(fx);
      const agent = await fx.agent({
        resolvConfPath: await resolvConf(fx, `nameserver 127.0.0.1:${dns.port}\n`),
      });
      const client = await fx.client(agent);
      const answer = await client.dnsQuery(QUERY);
      assert.equal(answer.readUInt16BE(0), 0x1234);
      assert.match(answer.toString('latin1'), /answer-via-udp$/);
      assert.deepEqual(dns.queries, ['udp']);
    });

    it('retries over TCP when the UDP answer is truncated', async () => {
      const dns = await fakeDns(fx, { truncateUdp: true });
      const agent = await fx.agent({
        resolvConfPath: await resolvConf(fx, `nameserver 127.0.0.1:${dns.port}\n`),
      });
      const client = await fx.client(agent);
      const answer = await client.dnsQuery(QUERY);
      assert.match(answer.toString('latin1'), /answer-via-tcp$/);
      assert.deepEqual(dns.queries, ['udp', 'tcp']);
    });

    it('fails the query, not the tunnel, when no nameserver answers', async () => {
      const silent = dgram.createSocket('udp4');
      await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
      fx.add(() => new Promise<void>((resolve) => silent.close(() => resolve())));
      const conf = `nameserver 127.0.0.1:${silent.address().port}\noptions timeout:1 attempts:1\n`;
      const agent = await fx.agent({ resolvConfPath: await resolvConf(fx, conf) });
      const client = await fx.client(agent);
      await assert.rejects(
        client.dnsQuery(QUERY),
        (err) => err instanceof StreamRefusedError && err.status === 502,
      );
      await assert.rejects(client.dnsQuery(Buffer.from('short')), (err) => err instanceof StreamRefusedError);
      assert.equal(client.closed, false);
    });
  });

  describe('files', () => {
    it('streams a directory as tar', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'devbox-files-'));
      fx.add(() => rm(dir, { recursive: true, force: true }));
      await mkdir(join(dir, 'sub'));
      await writeFile(join(dir, 'a.txt'), 'alpha');
      await writeFile(join(dir, 'sub', 'b.bin'), Buffer.alloc(100_000, 9));
      await writeFile(join(dir, 'empty'), '');
      await symlink('a.txt', join(dir, 'link'));
      const agent = await fx.agent();
      const client = await fx.client(agent);
      const archive = await client.files(dir);
      const entries = new Map<string, { type: string; body: Buffer; linkname?: string }>();
      const extract = tar.extract();
      extract.on('entry', (header, stream, next) => {
        readAll(stream as unknown as Readable).then((body) => {
          entries.set(header.name, { type: header.type, body, linkname: header.linkname });
          next();
        });
      });
      archive.pipe(extract);
      await within(once(extract, 'finish'), 5_000, 'extract');
      assert.deepEqual([...entries.keys()].sort(), ['a.txt', 'empty', 'link', 'sub', 'sub/b.bin']);
      assert.equal(entries.get('a.txt')!.body.toString(), 'alpha');
      assert.equal(entries.get('sub/b.bin')!.body.length, 100_000);
      assert.equal(entries.get('link')!.type, 'symlink');
      assert.equal(entries.get('link')!.linkname, 'a.txt');
      assert.equal(entries.get('sub')!.type, 'directory');
    });

    it('a client that goes away mid-archive leaves the agent serving', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'devbox-files-'));
      fx.add(() => rm(dir, { recursive: true, force: true }));
      for (let i = 0; i < 8; i++) await writeFile(join(dir, `f${i}`), Buffer.alloc(4 * 1024 * 1024, i));
      await writeFile(join(dir, 'zero'), '');
      await mkdir(join(dir, 'd'));
      const agent = await fx.agent();
      const first = await fx.client(agent);
      const archive = await first.files(dir);
      await once(archive, 'data');
      first.destroy();
      const second = await fx.client(agent);
      const again = await second.files(dir);
      archive.on('error', () => {});
      again.resume();
      await within(once(again, 'end'), 5_000, 'second archive');
      const third = await fx.client(agent);
      const partial = await third.files(dir);
      partial.on('error', () => {});
      await once(partial, 'data');
      abortStream(partial as Duplex);
      await sleep(100);
      assert.equal((await (await fx.client(agent)).stats()).sessions, 3);
    });

    it('answers 404 for a missing path and 400 for a relative one', async () => {
      const agent = await fx.agent();
      const client = await fx.client(agent);
      await assert.rejects(
        client.files(join(tmpdir(), 'no-such-dir-here')),
        (e) => e instanceof StreamRefusedError && e.status === 404,
      );
      await assert.rejects(
        client.files('relative'),
        (e) => e instanceof StreamRefusedError && e.status === 400,
      );
    });
  });

  describe('inbound (intercept)', () => {
    /** Accepts inbound connections into the TCP server on `port`, with a pool of `pool` streams. */
    async function acceptInto(client: TunnelClient, port: number, pool: number) {
      const handle = client.startAccepting((stream) => {
        const local = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
        local.on('connect', () => void joinStreams(local, stream));
      }, pool);
      await eventually(async () => (await client.stats()).open.acceptPending === pool, 2_000, 'accept pool');
      return handle;
    }

    async function interceptSetup(overrides: Parameters<Fixtures['agent']>[0] = {}) {
      const app = await fx.bannerServer('from-app');
      const sidecarApp = await fx.tcpServer((socket) => {
        let body = '';
        socket.on('data', (d: Buffer) => {
          body += d.toString();
        });
        socket.on('end', () => socket.end(`from-sidecar:${body}`));
      });
      const agent = await fx.agent({ intercepts: [{ listenPort: 0, appPort: app }], ...overrides });
      const port = agent.intercepts[0]!.listenPort;
      return { app, sidecarApp, agent, port };
    }

    it('passes through to the app when no session is there', async () => {
      const { port } = await interceptSetup();
      assert.equal(await exchange(port), 'from-app');
    });

    it('routes connections to the sidecar through the accept pool and refills it', async () => {
      const { sidecarApp, agent, port } = await interceptSetup();
      const client = await fx.client(agent);
      const infos: { clientAddress: string; interceptPort: number; appPort: number }[] = [];
      client.startAccepting((stream, info) => {
        infos.push(info);
        const local = net.connect({ host: '127.0.0.1', port: sidecarApp, allowHalfOpen: true });
        local.on('connect', () => void joinStreams(local, stream));
      }, 3);
      await eventually(async () => (await client.stats()).open.acceptPending === 3, 2_000, 'pool of 3');
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => exchange(port, `req${i}`)));
      assert.deepEqual(
        answers,
        Array.from({ length: 10 }, (_, i) => `from-sidecar:req${i}`),
      );
      assert.equal(infos[0]!.clientAddress, '127.0.0.1');
      assert.equal(infos[0]!.interceptPort, port);
      assert.equal(infos[0]!.appPort, agent.intercepts[0]!.appPort);
      await eventually(async () => (await client.stats()).open.acceptPending === 3, 2_000, 'pool refilled');
      assert.equal(agent.stats().totals.intercepted, 10);
    });

    it('a sidecar that cannot reach its local app resets only that connection', async () => {
      const { agent, port } = await interceptSetup();
      const client = await fx.client(agent);
      const dead = await fx.freePort();
      client.startAccepting((stream) => {
        const local = net.connect({ host: '127.0.0.1', port: dead, allowHalfOpen: true });
        local.on('error', () => (stream as ClientHttp2Stream).close(http2.constants.NGHTTP2_CONNECT_ERROR));
        local.on('connect', () => void joinStreams(local, stream));
      }, 2);
      await eventually(async () => (await client.stats()).open.acceptPending === 2, 2_000, 'pool');
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.resume();
      const [err] = await within(once(socket, 'error'), 2_000, 'reset');
      assert.equal((err as NodeJS.ErrnoException).code, 'ECONNRESET');
      assert.equal(client.closed, false);
    });

    it('a connection the local app refuses is served by the app in the pod, with what the client sent; then by the local app once it is back', async () => {
      const podApp = await fx.tcpServer((socket) => {
        let body = '';
        socket.on('data', (d: Buffer) => {
          body += d.toString();
        });
        socket.on('end', () => socket.end(`from-pod:${body}`));
      });
      const agent = await fx.agent({ intercepts: [{ listenPort: 0, appPort: podApp }] });
      const port = agent.intercepts[0]!.listenPort;
      const client = await fx.client(agent);
      const localPort = await fx.freePort();
      const stats = newInboundStats();
      // The sidecar's own inbound handler, with its local app on a port nothing listens on yet.
      const inbound = createInboundHandler({
        interceptPorts: [{ port: podApp, appPort: localPort }],
        stats,
        onError: () => {},
      });
      client.startAccepting((stream, info) => inbound({ stream, confirm: true, ...info }), 2, {
        confirm: true,
      });
      await eventually(async () => (await client.stats()).open.acceptPending === 2, 2_000, 'pool');

      assert.equal(await exchange(port, 'req-1'), 'from-pod:req-1');
      assert.equal(await exchange(port, 'x'.repeat(100_000)), `from-pod:${'x'.repeat(100_000)}`);
      assert.equal(stats.refused, 2);
      assert.equal(agent.stats().totals.localRefused, 2);
      assert.equal(agent.stats().totals.intercepted, 2);

      const local = net.createServer({ allowHalfOpen: true }, (socket) => {
        let body = '';
        socket.on('data', (d: Buffer) => {
          body += d.toString();
        });
        socket.on('end', () => socket.end(`from-local:${body}`));
      });
      await new Promise<void>((resolve) => local.listen(localPort, '127.0.0.1', resolve));
      try {
        assert.equal(await exchange(port, 'req-2'), 'from-local:req-2');
        assert.equal(await exchange(port, 'y'.repeat(100_000)), `from-local:${'y'.repeat(100_000)}`);
        assert.equal(agent.stats().totals.localRefused, 2);
      } finally {
        local.close();
      }
    });

    it('stop() hands traffic back to the app', async () => {
      const { sidecarApp, agent, port } = await interceptSetup();
      const client = await fx.client(agent);
      const handle = await acceptInto(client, sidecarApp, 2);
      assert.equal(await exchange(port, 'a'), 'from-sidecar:a');
      handle.stop();
      await eventually(async () => (await exchange(port, 'b')) === 'from-app', 2_000, 'back to app');
    });

    it('passes through within 2 s after the sidecar side is destroyed', async () => {
      const { sidecarApp, agent, port } = await interceptSetup();
      const client = await fx.client(agent);
      await acceptInto(client, sidecarApp, 2);
      assert.equal(await exchange(port, 'x'), 'from-sidecar:x');
      client.destroy();
      const t0 = Date.now();
      await eventually(
        async () => (await exchange(port, 'y', 500).catch(() => '')) === 'from-app',
        2_000,
        'pass-through',
      );
      assert.ok(Date.now() - t0 < 2_000);
    });

    it('passes through within 2 s after the sidecar goes silent (no close seen)', async () => {
      const { sidecarApp, agent, port } = await interceptSetup();
      // A proxy between client and agent that can freeze: bytes stop, sockets stay open.
      let frozen = false;
      const proxy = await fx.tcpServer((downstream) => {
        const upstream = net.connect({ host: '127.0.0.1', port: agent.tunnelPort });
        upstream.on('error', () => {});
        fx.add(() => {
          upstream.destroy();
        });
        downstream.on('data', (d: Buffer) => {
          if (!frozen) upstream.write(d);
        });
        upstream.on('data', (d: Buffer) => {
          if (!frozen) downstream.write(d);
        });
      });
      const socket = await fx.socketTo(proxy);
      const { TunnelClient } = await import('../../../src/tunnel/client.js');
      const client = await TunnelClient.connect(socket, { token: TEST_TOKEN, pingIntervalMs: 0 });
      fx.add(() => client.destroy());
      await acceptInto(client, sidecarApp, 2);
      assert.equal(await exchange(port, 'x'), 'from-sidecar:x');
      frozen = true;
      const t0 = Date.now();
      await eventually(
        async () => (await exchange(port, 'y', 400).catch(() => '')) === 'from-app',
        2_500,
        'pass-through',
      );
      const elapsed = Date.now() - t0;
      assert.ok(elapsed < 2_000, `pass-through after ${elapsed} ms`);
    });

    it('answers probes on the health port itself, also while a session accepts', async () => {
      const healthPort = await fx.freePort();
      const { sidecarApp, agent } = await interceptSetup({ healthPort });
      const client = await fx.client(agent);
      await acceptInto(client, sidecarApp, 2);
      assert.equal(await exchange(healthPort), '', 'accepted and closed');
      assert.equal(agent.stats().totals.intercepted, 0);
    });

    it('hands a keep-alive connection over to a new session at its first quiet moment after an answer', async () => {
      // An app that answers every message and keeps the connection, like an HTTP keep-alive server.
      const app = await fx.tcpServer((socket) => {
        socket.on('data', (d: Buffer) => {
          if (d.toString() === 'slow') setTimeout(() => socket.write('app:slow'), 2 * HAND_OVER_QUIET_MS);
          else socket.write(`app:${d}`);
        });
        socket.on('end', () => socket.end());
      });
      const sidecarApp = await fx.tcpServer((socket) => socket.end('from-sidecar'));
      const agent = await fx.agent({ intercepts: [{ listenPort: 0, appPort: app }] });
      const port = agent.intercepts[0]!.listenPort;
      const answered = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      const waiting = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
      fx.add(() => {
        answered.destroy();
        waiting.destroy();
      });
      assert.equal(await roundTrip(answered, 'one'), 'app:one');
      if (waiting.connecting) await once(waiting, 'connect');
      await sleep(2 * HAND_OVER_QUIET_MS);
      assert.equal(answered.readableEnded, false, 'no session, no hand-over');

      const client = await fx.client(agent);
      client.startAccepting((stream) => {
        const local = net.connect({ host: '127.0.0.1', port: sidecarApp, allowHalfOpen: true });
        local.on('connect', () => void joinStreams(local, stream));
      }, 2);
      // The client asked and is still waiting: its connection stays, and the answer arrives.
      const slowAnswer = roundTrip(waiting, 'slow');
      const ended = within(once(answered, 'end'), 2_000, 'hand-over of the answered connection');
      await ended;
      answered.end();
      assert.equal(await slowAnswer, 'app:slow', 'a connection waiting on the app is left alone');
      assert.equal(agent.stats().totals.handedOver, 1);
      assert.equal(await exchange(port), 'from-sidecar', 'the client reconnects to the session');
      // Once the app has answered and the connection is quiet, it is handed over too.
      await within(once(waiting, 'end'), 2_000, 'hand-over after the answer');
      assert.equal(agent.stats().totals.handedOver, 2);
    });

    it('leaves a greeted connection alone until the app has answered the client', async () => {
      // Server-first protocols (SMTP, MySQL, the benchmark's TCP echo) greet on connect: a greeting
      // answers nothing, and a client may take its time to reply.
      const app = await fx.tcpServer((socket) => {
        socket.write('app:hello');
        socket.on('data', (d: Buffer) => socket.write(`app:${d}`));
        socket.on('end', () => socket.end());
      });
      const sidecarApp = await fx.tcpServer((socket) => socket.end('from-sidecar'));
      const agent = await fx.agent({ intercepts: [{ listenPort: 0, appPort: app }] });
      const greeted = net.connect({
        host: '127.0.0.1',
        port: agent.intercepts[0]!.listenPort,
        allowHalfOpen: true,
      });
      greeted.on('error', () => {});
      fx.add(() => {
        greeted.destroy();
      });
      const [greeting] = (await once(greeted, 'data')) as [Buffer];
      assert.equal(greeting.toString(), 'app:hello');
      const client = await fx.client(agent);
      await acceptInto(client, sidecarApp, 2);
      await sleep(4 * HAND_OVER_QUIET_MS);
      assert.equal(greeted.readableEnded, false, 'a greeted, quiet connection stays');
      assert.equal(agent.stats().totals.handedOver, 0);
      assert.equal(await roundTrip(greeted, 'one'), 'app:one');
      await within(once(greeted, 'end'), 2_000, 'hand-over after the first answer');
      assert.equal(agent.stats().totals.handedOver, 1);
    });

    it('takes a client that never pauses long at a short pause, once it kept the session waiting', async () => {
      const app = await fx.tcpServer((socket) => {
        socket.on('data', (d: Buffer) => socket.write(`app:${d}`));
        socket.on('end', () => socket.end());
      });
      const sidecarApp = await fx.tcpServer((socket) => socket.end('from-sidecar'));
      const agent = await fx.agent({ intercepts: [{ listenPort: 0, appPort: app }] });
      const busy = net.connect({
        host: '127.0.0.1',
        port: agent.intercepts[0]!.listenPort,
        allowHalfOpen: true,
      });
      busy.on('error', () => {});
      // Asks every 100 ms: never quiet for HAND_OVER_QUIET_MS.
      const asking = setInterval(() => busy.writable && busy.write('x'), 100);
      fx.add(() => {
        clearInterval(asking);
        busy.destroy();
      });
      await once(busy, 'data');
      const client = await fx.client(agent);
      await acceptInto(client, sidecarApp, 2);
      const t0 = Date.now();
      await within(once(busy, 'end'), HAND_OVER_PATIENCE_MS + 2_000, 'hand-over of a busy connection');
      assert.ok(Date.now() - t0 >= HAND_OVER_PATIENCE_MS - 200, `handed over after ${Date.now() - t0} ms`);
      assert.equal(agent.stats().totals.handedOver, 1);
    });

    it('queues connections while the pool is empty, bounded, then passes through', async () => {
      const { agent, port } = await interceptSetup({ acceptQueueMax: 1, acceptWaitMs: 400 });
      const session = await rawSession(fx, agent.tunnelPort);
      await rawHello(session);
      const acceptReq = () => {
        const s = session.request(
          { ':method': 'POST', ':path': PATHS.accept, [HEADERS.acceptGeneration]: '1' },
          { endStream: false },
        );
        s.on('error', () => {});
        return s;
      };
      const first = acceptReq();
      await eventually(() => agent.stats().open.acceptPending === 1, 2_000, 'pending accept');
      const c1 = exchange(port, 'one');
      assert.equal((await response(first))[':status'], 200);
      first.end('to-one');
      assert.equal(await c1, 'to-one');
      // Accepting, pool empty: the next connection waits in the queue, the one after overflows.
      const c2Socket = net.connect({ host: '127.0.0.1', port });
      c2Socket.on('error', () => {});
      await eventually(() => agent.stats().queued === 1, 2_000, 'queued');
      assert.equal(await exchange(port), 'from-app', 'overflow passes through at once');
      assert.equal(agent.stats().totals.queueOverflows, 1);
      // A new accept stream takes the queued connection.
      const second = acceptReq();
      assert.equal((await response(second))[':status'], 200);
      second.end('to-two');
      assert.equal((await readAll(c2Socket)).toString(), 'to-two');
      // Without a new accept stream, a queued connection passes through after the wait.
      const t0 = Date.now();
      assert.equal(await exchange(port), 'from-app');
      assert.ok(Date.now() - t0 >= 350, 'waited for an accept stream first');
    });
  });

  describe('hostile input', () => {
    it('garbage on the tunnel port closes that connection; the agent serves on', async () => {
      const echo = await fx.echoServer();
      const agent = await fx.agent();
      const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
      // Most garbage fails at once; a frame header announcing more bytes than follow keeps Node's
      // HTTP/2 layer waiting (it reports no EOF then), and the hello timeout closes it.
      await fuzzAsync('agent tunnel port garbage', { rounds: 30, roundMs: 15_000 }, async (rng, i) => {
        const socket = await fx.socketTo(agent.tunnelPort);
        socket.on('error', () => {});
        socket.resume();
        const junk = rng.bytes(1 + rng.int(3000));
        socket.end(i % 2 ? Buffer.concat([preface, junk]) : junk);
        await within(closeOf(socket), HELLO_TIMEOUT_MS + 2_000, 'agent closes garbage connection');
      });
      const client = await fx.client(agent);
      const stream = await client.openTcp('127.0.0.1', echo);
      assert.equal(await roundTrip(stream, 'alive'), 'alive');
      stream.destroy();
    });

    it('a malformed control line closes only that session', async () => {
      const echo = await fx.echoServer();
      const agent = await fx.agent();
      const bystander = await fx.client(agent);
      const session = await rawSession(fx, agent.tunnelPort);
      const { control } = await rawHello(session);
      control.resume();
      const closed = closeOf(session);
      control.write('{"type": this is not json}\n');
      await within(closed, 2_000, 'session closed');
      const stream = await bystander.openTcp('127.0.0.1', echo);
      assert.equal(await roundTrip(stream, 'alive'), 'alive');
      assert.ok(agent.stats().totals.protocolErrors >= 1);
      stream.destroy();
    });

    it('an over-long control line closes the session without buffering it', async () => {
      const agent = await fx.agent();
      const session = await rawSession(fx, agent.tunnelPort);
      const { control } = await rawHello(session);
      control.resume();
      const closed = closeOf(session);
      const chunk = Buffer.alloc(16 * 1024, 0x61);
      for (let i = 0; i < 8 && !session.destroyed; i++) control.write(chunk);
      await within(closed, 2_000, 'session closed');
    });

    it('bad headers and unknown paths get error statuses', async () => {
      const agent = await fx.agent();
      const session = await rawSession(fx, agent.tunnelPort);
      await rawHello(session);
      const cases: [Record<string, string>, number][] = [
        [{ ':path': PATHS.tcp }, 400],
        [{ ':path': PATHS.tcp, [HEADERS.target]: 'nonsense' }, 400],
        [{ ':path': PATHS.udp, [HEADERS.target]: '[::1]' }, 400],
        [{ ':path': '/v9/what' }, 404],
        [{ ':path': PATHS.session }, 409],
      ];
      for (const [headers, status] of cases) {
        const req = session.request({ ':method': 'POST', ...headers }, { endStream: true });
        req.on('error', () => {});
        assert.equal((await response(req))[':status'], status, JSON.stringify(headers));
      }
    });

    it('random bytes on a UDP flow are framed or refused, never fatal', async () => {
      const port = await fx.udpEchoServer();
      const agent = await fx.agent();
      const session = await rawSession(fx, agent.tunnelPort);
      await rawHello(session);
      await fuzzAsync('agent UDP flow garbage', { rounds: 10, roundMs: 6_000 }, async (rng) => {
        const req = session.request(
          { ':method': 'POST', ':path': PATHS.udp, [HEADERS.target]: `127.0.0.1:${port}` },
          { endStream: false },
        );
        req.on('error', () => {});
        req.resume();
        assert.equal((await response(req))[':status'], 200);
        req.end(rng.bytes(rng.int(5000)));
        await within(closeOf(req), 5_000, 'flow closes');
      });
      const client = await fx.client(agent);
      const flow = await client.udpFlow('127.0.0.1', port);
      flow.send(Buffer.from('alive'));
      const [msg] = await within(once(flow, 'message'), 2_000, 'echo');
      assert.equal(msg.toString(), 'alive');
      flow.close();
    });
  });
});
