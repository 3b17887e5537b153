import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import http2, { type IncomingHttpHeaders } from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { TunnelClient } from '../../../src/tunnel/client.js';
import { HEADERS, PATHS, PROTOCOL_VERSION } from '../../../src/tunnel/protocol.js';
import { agentProof, newNonce, proofMatches, sidecarProof } from '../../../src/tunnel/session-proof.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { Fixtures, TEST_TOKEN } from './harness.js';

const hmac = (token: string, text: string) => createHmac('sha256', token).update(text).digest('base64url');

/** What a pod listening on the tunnel port heard from a sidecar. */
interface Heard {
  headers: IncomingHttpHeaders[];
  bodies: Buffer[];
}

/**
 * A pod that is not the agent: it speaks HTTP/2 on the tunnel port, records every header and byte,
 * and answers the session request as `answer` says (and, like an agent of protocol 1, a hello).
 */
async function impostor(fx: Fixtures, answer: (headers: IncomingHttpHeaders) => http2.OutgoingHttpHeaders) {
  const heard: Heard = { headers: [], bodies: [] };
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    heard.headers.push(headers);
    stream.on('data', (chunk: Buffer) => heard.bodies.push(chunk));
    stream.on('error', () => {});
    stream.respond(answer(headers));
    stream.write(
      `${JSON.stringify({ type: 'hello', protocol: PROTOCOL_VERSION, hostname: 'x', node: 'v0', intercepts: [] })}\n`,
    );
  });
  const tcp = net.createServer((socket) => server.emit('connection', socket));
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  fx.add(() => new Promise<void>((resolve) => tcp.close(() => resolve())));
  fx.add(() => {
    server.close();
  });
  return { port: (tcp.address() as AddressInfo).port, heard };
}

/**
 * `socket` with what it reads handed on in one chunk per 50 ms, as a port-forward through the API
 * server and the kubelet does: frames written apart arrive together.
 */
function coalescing(socket: net.Socket): Duplex {
  let held: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const duplex = new Duplex({
    read() {},
    write(chunk, _encoding, done) {
      socket.write(chunk, done);
    },
    final(done) {
      socket.end(done);
    },
    destroy(err, done) {
      clearTimeout(timer);
      socket.destroy();
      done(err);
    },
  });
  socket.on('data', (chunk: Buffer) => {
    held.push(chunk);
    timer ??= setTimeout(() => {
      timer = undefined;
      const all = Buffer.concat(held);
      held = [];
      duplex.push(all);
    }, 50);
  });
  socket.on('end', () => duplex.push(null));
  socket.on('error', (err) => duplex.destroy(err));
  return duplex;
}

function everythingHeard(heard: Heard): string {
  return JSON.stringify(heard.headers) + Buffer.concat(heard.bodies).toString('latin1');
}

describe('session proof', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('is HMAC-SHA256 of the token over a side label and both nonces, base64url', () => {
    const a = newNonce();
    const b = newNonce();
    assert.equal(agentProof('tok', a, b), hmac('tok', `devbox-agent-proof\0${a}\0${b}`));
    assert.equal(sidecarProof('tok', b, a), hmac('tok', `devbox-sidecar-proof\0${b}\0${a}`));
    assert.notEqual(agentProof('tok', a, b), sidecarProof('tok', a, b), 'one side cannot replay the other');
    assert.match(a, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(a, b);
  });

  it('compares only well-formed proofs', () => {
    const expected = agentProof('tok', newNonce(), newNonce());
    assert.equal(proofMatches(expected, expected), true);
    for (const bad of [undefined, 42, '', `${expected}=`, expected.slice(1), ['x'], 'é'.repeat(43)]) {
      assert.equal(proofMatches(bad, expected), false, JSON.stringify(bad));
    }
  });

  it('a peer whose answer and hello arrive in one read is refused too (Node emits the data before the response)', async () => {
    const { port, heard } = await impostor(fx, () => ({ ':status': 200 }));
    const socket = net.connect({ host: '127.0.0.1', port });
    fx.add(() => {
      socket.destroy();
    });
    await assert.rejects(
      TunnelClient.connect(coalescing(socket), { token: TEST_TOKEN, pingIntervalMs: 0 }),
      (err) => {
        assert.ok(isDevboxError(err, 'FORBIDDEN'), String(err));
        return true;
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(heard.headers.length, 1, 'no request after the session request');
    assert.equal(Buffer.concat(heard.bodies).length, 0);
  });

  for (const [what, answer] of [
    ['answers 200 with no proof', () => ({ ':status': 200 })],
    [
      'answers with a proof made up without the token',
      () => ({ ':status': 200, [HEADERS.agentNonce]: newNonce(), [HEADERS.agentProof]: 'A'.repeat(43) }),
    ],
    [
      'echoes the sidecar nonce back as its own',
      (h: IncomingHttpHeaders) => ({
        ':status': 200,
        [HEADERS.agentNonce]: String(h[HEADERS.sidecarNonce]),
        [HEADERS.agentProof]: String(h[HEADERS.sidecarNonce]),
      }),
    ],
  ] as const) {
    it(`a peer that ${what} is refused and hears neither the token nor a proof`, async () => {
      const { port, heard } = await impostor(fx, answer);
      const socket = net.connect({ host: '127.0.0.1', port });
      fx.add(() => {
        socket.destroy();
      });
      await assert.rejects(TunnelClient.connect(socket, { token: TEST_TOKEN, pingIntervalMs: 0 }), (err) => {
        assert.ok(isDevboxError(err, 'FORBIDDEN'), String(err));
        assert.match((err as Error).message, /not this session's agent/);
        return true;
      });
      const all = everythingHeard(heard);
      assert.equal(heard.headers.length, 1, 'one request: the session');
      assert.equal(heard.headers[0]![':path'], PATHS.session);
      assert.ok(!all.includes(TEST_TOKEN), 'the token never travels');
      assert.equal(Buffer.concat(heard.bodies).length, 0, 'no proof (nor anything else) sent');
    });
  }

  it('an agent of protocol 1 (token check first, 403) gets an error that says to replace it', async () => {
    const { port } = await impostor(fx, () => ({ ':status': 403, [HEADERS.error]: 'wrong session token' }));
    const socket = net.connect({ host: '127.0.0.1', port });
    fx.add(() => {
      socket.destroy();
    });
    await assert.rejects(TunnelClient.connect(socket, { token: TEST_TOKEN, pingIntervalMs: 0 }), (err) => {
      assert.ok(isDevboxError(err, 'PROTOCOL'), String(err));
      assert.match((err as Error).message, /older tunnel protocol/);
      assert.match(String((err as { hint?: string }).hint), /devbox down/);
      return true;
    });
  });

  it('several sidecars holding the same token each open a session with one agent', async () => {
    const agent = await fx.agent();
    const clients = await Promise.all([fx.client(agent), fx.client(agent), fx.client(agent)]);
    assert.deepEqual(
      clients.map((c) => c.hello.protocol),
      [PROTOCOL_VERSION, PROTOCOL_VERSION, PROTOCOL_VERSION],
    );
    assert.equal(agent.stats().sessions, 3);
  });
});
