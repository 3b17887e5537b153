import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { Informer } from '../../../../src/kube/api/informer.js';
import {
  type ApiTransport,
  createApiTransport,
  type TokenConnection,
  tokenEndpoint,
} from '../../../../src/kube/api/transport.js';
import { type AgentPod, paths, toAgentPod } from '../../../../src/sidecar/resources.js';
import { eventually, FakeKube } from '../../sidecar/fakes.js';

const podsPath = paths.pods('shop');

function pod(name: string, ready: boolean, labels: Record<string, string> = { app: 'api' }) {
  return {
    metadata: { name, uid: `uid-${name}`, labels },
    spec: { containers: [{ name: 'app' }, { name: 'devbox-agent' }] },
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
