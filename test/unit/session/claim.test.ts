import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { KubeClient } from '../../../src/kube/client.js';
import {
  ANNOTATION_ORIGINAL,
  ANNOTATION_SESSION,
  type SessionHolder,
  type SessionRecord,
  type Workload,
} from '../../../src/kube/index.js';
import { claimWorkload } from '../../../src/session/up/claim.js';
import type { UpContext, UpPlan } from '../../../src/session/up/types.js';
import { UndoStack } from '../../../src/session/up/undo.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { silentProgress } from '../../../src/util/progress.js';
import { FakeApi, json, status } from '../kube/fake-api.js';

const PATH = '/apis/apps/v1/namespaces/shop/deployments/api';
const mine: SessionRecord = {
  user: 'alice',
  host: 'laptop',
  startedAt: '2026-05-01T10:00:00Z',
  id: 'aaaa',
  pid: 7,
  name: 'alice',
  route: { mode: 'global', headers: [] },
  kind: 'local',
};
const personal = (s: SessionRecord): SessionRecord => ({
  ...s,
  route: { mode: 'filtered', headers: [], personal: true },
});
const theirs: SessionHolder = { user: 'bob', host: 'desk', startedAt: '2026-05-01T10:00:01Z', id: 'bbbb' };

function deployment(
  resourceVersion: string,
  holder?: SessionHolder | SessionRecord[],
  original?: string,
): Workload {
  const annotations = {
    ...(holder ? { [ANNOTATION_SESSION]: JSON.stringify(holder) } : {}),
    ...(original ? { [ANNOTATION_ORIGINAL]: original } : {}),
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'api',
      namespace: 'shop',
      resourceVersion,
      ...(holder || original ? { annotations } : {}),
    },
    spec: { selector: { matchLabels: { app: 'api' } }, template: { spec: { containers: [] } } },
  } as Workload;
}

function setUp(
  client: KubeClient,
  read: Workload,
  session: SessionRecord = mine,
  mode: 'fresh' | 'join' = 'fresh',
): { ctx: UpContext; plan: UpPlan } {
  const ctx = {
    client,
    progress: silentProgress,
    signal: new AbortController().signal,
    step: (_title: string, run: () => Promise<unknown>) => run(),
  } as unknown as UpContext;
  const plan = {
    target: { workload: read, namespace: 'shop', name: 'api', label: 'deployment/api', replaces: [] },
    session,
    cluster: { mode },
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
    assert.deepEqual(JSON.parse(put.metadata?.annotations?.[ANNOTATION_SESSION] ?? ''), [mine]);
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

  it('joins beside a session that claimed first when their filters differ, keeping it in the record', async () => {
    // Stands for the record of an agent in place: the claim does not read it.
    const agent = '{"v":1}';
    const bob = personal({ ...theirs, name: 'bob', route: { mode: 'global', headers: [] }, kind: 'local' });
    let puts = 0;
    api.on('PUT', PATH, (req, res) =>
      ++puts === 1
        ? json(res, 409, status(409, 'Conflict', 'the object has been modified'))
        : json(res, 200, JSON.parse(req.body)),
    );
    api.on('GET', PATH, (_req, res) => json(res, 200, deployment('2', [bob], agent)));
    const { ctx, plan } = setUp(client, deployment('1', [], agent), personal(mine), 'join');
    const claimed = await claimWorkload(ctx, plan, new UndoStack());
    assert.deepEqual(
      JSON.parse(claimed.metadata?.annotations?.[ANNOTATION_SESSION] ?? '').map((s: SessionRecord) => s.id),
      ['bbbb', 'aaaa'],
    );
  });

  it('refuses a second session with the same filter, naming its holder', async () => {
    const agent = '{"v":1}';
    const route = { mode: 'filtered' as const, headers: [{ name: 'x-user', value: 'alice' }] };
    const bob: SessionRecord = { ...theirs, name: 'bob', route, kind: 'local' };
    api.on('PUT', PATH, (_req, res) => json(res, 409, status(409, 'Conflict', 'modified')));
    api.on('GET', PATH, (_req, res) => json(res, 200, deployment('2', [bob], agent)));
    const { ctx, plan } = setUp(client, deployment('1', [], agent), { ...mine, route }, 'join');
    await assert.rejects(
      () => claimWorkload(ctx, plan, new UndoStack()),
      (err: unknown) =>
        isDevboxError(err, 'CONFLICT') && /same requests .*bob@desk/.test((err as Error).message),
    );
  });

  it("undoing a joined session's claim takes out its own entry only", async () => {
    const agent = '{"v":1}';
    const bob = personal({ ...theirs, name: 'bob', route: { mode: 'global', headers: [] }, kind: 'local' });
    const both = deployment('3', [bob, personal(mine)], agent);
    let written: Workload | undefined;
    api.on('PUT', PATH, (req, res) => {
      written = JSON.parse(req.body);
      json(res, 200, written);
    });
    api.on('GET', PATH, (_req, res) => json(res, 200, both));
    const { ctx, plan } = setUp(client, deployment('1', [bob], agent), personal(mine), 'join');
    const undo = new UndoStack();
    await claimWorkload(ctx, plan, undo);
    assert.deepEqual(await undo.unwind(silentProgress), []);
    assert.deepEqual(JSON.parse(written?.metadata?.annotations?.[ANNOTATION_SESSION] ?? ''), [bob]);
    assert.equal(written?.metadata?.annotations?.[ANNOTATION_ORIGINAL], agent, 'the agent stays for bob');
  });
});
