import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { KubeApiError } from '../../../../src/kube/api/errors.js';
import { Informer } from '../../../../src/kube/api/informer.js';
import {
  type ApiTransport,
  createApiTransport,
  type TokenConnection,
  tokenEndpoint,
} from '../../../../src/kube/api/transport.js';
import { type AgentPod, paths, toAgentPod } from '../../../../src/sidecar/resources.js';
import { eventually, FakeKube } from '../../sidecar/fakes.js';
import { TEST_CERT, TEST_KEY } from '../../sidecar/tls-fixture.js';

const podsPath = paths.pods('shop');

function pod(name: string, ready: boolean, labels: Record<string, string> = { app: 'api' }) {
  return {
    metadata: { name, uid: `uid-${name}`, labels },
    status: {
      phase: 'Running',
      podIP: `10.244.0.${name.length}`,
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      containerStatuses: [{ name: 'devbox-agent', ready }],
    },
  };
}

const createKubeApi = (conn: TokenConnection): ApiTransport =>
  createApiTransport(tokenEndpoint(conn, { context: 'the test token' }));

describe('informer (list + watch)', () => {
  let kube: FakeKube;
  let api: ApiTransport;
  let stop: AbortController;
  let changes: number;
  let informer: Informer<AgentPod>;
  let running: Promise<void>;

  beforeEach(async () => {
    kube = await new FakeKube().start();
    api = createKubeApi({ server: kube.url, token: () => 'test-token' });
    stop = new AbortController();
    changes = 0;
  });
  afterEach(async () => {
    stop.abort();
    await running;
    await kube.stop();
  });

  const startInformer = (selector = 'app=api') => {
    informer = new Informer<AgentPod>({
      api,
      path: podsPath,
      labelSelector: selector,
      transform: (o) => toAgentPod(o),
      onChange: () => changes++,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    running = informer.run(stop.signal);
  };
  const watchRequests = () => kube.requests.filter((r) => r.includes('watch=1'));
  const listRequests = () => kube.requests.filter((r) => !r.includes('watch=1'));

  it('lists, then applies watch events (add, modify, delete) filtered by the label selector', async () => {
    kube.put(podsPath, pod('api-1', true));
    kube.put(podsPath, pod('other', true, { app: 'web' }));
    startInformer();
    await informer.synced;
    assert.deepEqual([...informer.store.keys()], ['api-1']);
    assert.equal(informer.store.get('api-1')?.ready, true);
    await eventually(() => kube.watcherCount === 1, 3000, 'watch open');
    assert.match(watchRequests()[0]!, /labelSelector=app%3Dapi/);
    assert.match(watchRequests()[0]!, /resourceVersion=102/);
    assert.match(watchRequests()[0]!, /allowWatchBookmarks=true/);

    kube.put(podsPath, pod('api-2', false));
    await eventually(() => informer.store.has('api-2'));
    assert.equal(informer.store.get('api-2')?.ready, false);
    kube.put(podsPath, pod('api-2', true));
    await eventually(() => informer.store.get('api-2')?.ready === true);
    kube.delete(podsPath, 'api-1');
    await eventually(() => !informer.store.has('api-1'));
    assert.ok(changes >= 4);
  });

  it('resumes a watch that ended normally from the last resourceVersion, without listing again', async () => {
    startInformer();
    await eventually(() => kube.watcherCount === 1);
    kube.put(podsPath, pod('api-1', true));
    await eventually(() => informer.store.has('api-1'));
    kube.bookmark(podsPath);
    await new Promise((r) => setTimeout(r, 30));
    kube.endWatches();
    await eventually(() => kube.watcherCount === 1 && watchRequests().length === 2, 3000, 'watch restarted');
    assert.match(watchRequests()[1]!, /resourceVersion=102/, 'resumes after the bookmark');
    assert.equal(listRequests().length, 1);
    kube.put(podsPath, pod('api-3', true));
    await eventually(() => informer.store.has('api-3'));
  });

  it('lists again after 410 Gone, as an ERROR event or as the HTTP status', async () => {
    kube.put(podsPath, pod('api-1', true));
    startInformer();
    await eventually(() => kube.watcherCount === 1);
    // While nobody watches, api-1 goes away and api-2 comes: only a fresh list can tell.
    kube.watchFailures.push(410);
    kube.expireWatches();
    kube.delete(podsPath, 'api-1');
    kube.put(podsPath, pod('api-2', true));
    await eventually(() => listRequests().length >= 3 && kube.watcherCount === 1, 3000, 'relisted twice');
    assert.deepEqual([...informer.store.keys()], ['api-2']);
    assert.equal(informer.stats.errors, 0, '410 is not counted as an error');
  });

  it('backs off and retries on server errors, and reports the last one', async () => {
    kube.listFailures.push(500, 500);
    startInformer();
    await informer.synced;
    assert.equal(listRequests().length, 3);
    assert.equal(informer.stats.errors, 2);
    assert.match(informer.stats.lastError ?? '', /list failed/);
    await eventually(() => kube.watcherCount === 1);
    kube.watchFailures.push(500);
    kube.endWatches();
    await eventually(() => watchRequests().length >= 3 && kube.watcherCount === 1, 3000, 'watch after error');
    assert.equal(informer.stats.errors, 3);
  });

  it('follows list pagination with continue tokens', async () => {
    kube.pageSize = 2;
    for (const n of ['a', 'b', 'c', 'd', 'e']) kube.put(podsPath, pod(`api-${n}`, true));
    startInformer();
    await informer.synced;
    assert.equal(informer.store.size, 5);
    assert.equal(listRequests().length, 3);
  });

  it('stops promptly when aborted, even in the middle of a watch', async () => {
    startInformer();
    await eventually(() => kube.watcherCount === 1);
    const t = Date.now();
    stop.abort();
    await running;
    assert.ok(Date.now() - t < 500);
  });
});

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
