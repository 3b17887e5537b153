import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { KubeClient } from '../../../src/kube/client.js';
import { ANNOTATION_SESSION, type SessionHolder, type Workload } from '../../../src/kube/index.js';
import { claimWorkload } from '../../../src/session/up/claim.js';
import type { UpContext, UpPlan } from '../../../src/session/up/types.js';
import { UndoStack } from '../../../src/session/up/undo.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { silentProgress } from '../../../src/util/progress.js';
import { FakeApi, json, status } from '../kube/fake-api.js';

const PATH = '/apis/apps/v1/namespaces/shop/deployments/api';
const mine: SessionHolder = {
  user: 'alice',
  host: 'laptop',
  startedAt: '2026-05-01T10:00:00Z',
  id: 'aaaa',
  pid: 7,
};
const theirs: SessionHolder = { user: 'bob', host: 'desk', startedAt: '2026-05-01T10:00:01Z', id: 'bbbb' };

function deployment(resourceVersion: string, holder?: SessionHolder): Workload {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'api',
      namespace: 'shop',
      resourceVersion,
      ...(holder ? { annotations: { [ANNOTATION_SESSION]: JSON.stringify(holder) } } : {}),
    },
    spec: { selector: { matchLabels: { app: 'api' } }, template: { spec: { containers: [] } } },
  } as Workload;
}

function setUp(client: KubeClient, read: Workload): { ctx: UpContext; plan: UpPlan } {
  const ctx = {
    client,
    progress: silentProgress,
    signal: new AbortController().signal,
    step: (_title: string, run: () => Promise<unknown>) => run(),
  } as unknown as UpContext;
  const plan = {
    target: { workload: read, namespace: 'shop', name: 'api', label: 'deployment/api' },
    session: mine,
    cluster: { mode: 'fresh' },
  } as unknown as UpPlan;
  return { ctx, plan };
}

describe('claiming a workload', () => {
  let api: FakeApi;
  let client: KubeClient;
  beforeEach(async () => {
    api = new FakeApi();
    await api.start();
    client = api.client();
  });
  afterEach(async () => {
    client.close();
    await api.stop();
  });

  it('writes only the session annotation, on the version it read', async () => {
    api.on('PUT', PATH, (req, res) =>
      json(res, 200, {
        ...JSON.parse(req.body),
        metadata: { ...JSON.parse(req.body).metadata, resourceVersion: '2' },
      }),
    );
    const { ctx, plan } = setUp(client, deployment('1'));
    const claimed = await claimWorkload(ctx, plan, new UndoStack());
    const put = JSON.parse(api.requests[0]!.body) as Workload;
    assert.equal(put.metadata?.resourceVersion, '1');
    assert.deepEqual(JSON.parse(put.metadata?.annotations?.[ANNOTATION_SESSION] ?? ''), mine);
    assert.equal(claimed.metadata?.resourceVersion, '2');
  });

  it('stops naming the holder when another session claimed it first, and its undo changes nothing', async () => {
    api.on('PUT', PATH, (_req, res) =>
      json(res, 409, status(409, 'Conflict', 'the object has been modified')),
    );
    api.on('GET', PATH, (_req, res) => json(res, 200, deployment('2', theirs)));
    const { ctx, plan } = setUp(client, deployment('1'));
    const undo = new UndoStack();
    await assert.rejects(
      () => claimWorkload(ctx, plan, undo),
      (err: unknown) =>
        isDevboxError(err, 'CONFLICT') &&
        /in use by bob@desk .*\(session bbbb\)/.test((err as Error).message),
    );
    assert.deepEqual(await undo.unwind(silentProgress), []);
    assert.deepEqual(
      api.requests.map((r) => r.method),
      ['PUT', 'GET', 'GET'],
      'one claim attempt, one read to name the holder, one read by the undo: no second write',
    );
  });

  it('claims again when only the status moved since it was read', async () => {
    let puts = 0;
    api.on('PUT', PATH, (req, res) =>
      ++puts === 1
        ? json(res, 409, status(409, 'Conflict', 'the object has been modified'))
        : json(res, 200, JSON.parse(req.body)),
    );
    api.on('GET', PATH, (_req, res) => json(res, 200, deployment('2')));
    const { ctx, plan } = setUp(client, deployment('1'));
    const claimed = await claimWorkload(ctx, plan, new UndoStack());
    assert.equal(claimed.metadata?.resourceVersion, '2');
    assert.equal(puts, 2);
  });
});
