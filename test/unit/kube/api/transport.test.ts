import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { KubeApiError } from '../../../../src/kube/api/errors.js';
import {
  type ApiTransport,
  createApiTransport,
  type TokenConnection,
  tokenEndpoint,
} from '../../../../src/kube/api/transport.js';
import { paths } from '../../../../src/sidecar/resources.js';
import { FakeKube } from '../../sidecar/fakes.js';
import { TEST_CERT, TEST_KEY } from '../../sidecar/tls-fixture.js';

const podsPath = paths.pods('shop');

const createKubeApi = (conn: TokenConnection): ApiTransport =>
  createApiTransport(tokenEndpoint(conn, { context: 'the test token' }));

describe('API transport with a token', () => {
  it('sends the bearer token and surfaces the status code of failures', async () => {
    const kube = await new FakeKube().start();
    try {
      const bad = createKubeApi({ server: kube.url, token: () => 'wrong' });
      await assert.rejects(
        bad.request('GET', podsPath),
        (err: unknown) => err instanceof KubeApiError && err.status === 401,
      );
      let calls = 0;
      const good = createKubeApi({
        server: kube.url,
        token: () => {
          calls++;
          return 'test-token';
        },
      });
      await good.request('GET', podsPath);
      await good.request('GET', podsPath);
      assert.equal(calls, 2, 'token read for every request (rotated token files)');
    } finally {
      await kube.stop();
    }
  });

  it('names whose token was refused with the hint given, and retries a read the server is too busy for', async () => {
    const kube = await new FakeKube().start();
    try {
      const endpoint = tokenEndpoint(
        { server: kube.url, token: () => 'wrong' },
        { context: "the sidecar's token", hints: { unauthorized: 'run devbox up again' } },
      );
      await assert.rejects(createApiTransport(endpoint).request('GET', podsPath), (err: unknown) => {
        assert.ok(err instanceof KubeApiError && err.code === 'FORBIDDEN');
        assert.match(err.message, /rejected the credentials of the sidecar's token \(401 Unauthorized\)/);
        assert.equal(err.hint, 'run devbox up again');
        return true;
      });
      kube.listFailures.push(503);
      const good = createKubeApi({ server: kube.url, token: () => 'test-token' });
      assert.deepEqual(((await good.request('GET', podsPath)) as { items: unknown[] }).items, []);
      assert.equal(kube.requests.filter((r) => r.startsWith(podsPath)).length, 3);
    } finally {
      await kube.stop();
    }
  });

  it('answers requests while as many watches are open as requests have connections', async () => {
    const kube = await new FakeKube().start();
    const api = createApiTransport(
      tokenEndpoint(
        { server: kube.url, token: () => 'test-token' },
        { context: 'the test token', maxSockets: 2 },
      ),
    );
    const stop = new AbortController();
    try {
      for (const ns of ['a', 'b']) {
        await api.stream(paths.pods(ns), { query: { watch: 1 }, signal: stop.signal, idleTimeoutMs: 60_000 });
      }
      assert.equal(kube.watcherCount, 2);
      // A request waiting for a pooled socket has no timeout of its own: race it.
      const list = await Promise.race([
        api.request('GET', podsPath),
        new Promise((resolve) => setTimeout(resolve, 2_000, 'still waiting for a connection')),
      ]);
      assert.deepEqual(list, { kind: 'List', metadata: { resourceVersion: '100' }, items: [] });
    } finally {
      stop.abort();
      api.close();
      await kube.stop();
    }
  });

  it('verifies TLS against the configured server name when the address was rewritten', async () => {
    const server = https.createServer({ cert: TEST_CERT, key: TEST_KEY }, (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"kind":"PodList","items":[]}');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const named = createKubeApi({
        server: url,
        token: () => 't',
        ca: TEST_CERT,
        tlsServerName: 'kubernetes',
      });
      assert.deepEqual(await named.request('GET', '/api/v1/pods'), { kind: 'PodList', items: [] });
      const unnamed = createKubeApi({ server: url, token: () => 't', ca: TEST_CERT });
      await assert.rejects(unnamed.request('GET', '/api/v1/pods'), /IP: 127.0.0.1 is not in the cert's list/);
      const untrusted = createKubeApi({ server: url, token: () => 't', tlsServerName: 'kubernetes' });
      await assert.rejects(untrusted.request('GET', '/api/v1/pods'), /self.signed certificate/);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });
});
