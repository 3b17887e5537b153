import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { SessionRoute } from '../../../src/tunnel/route.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { Fixtures } from '../tunnel/harness.js';

const KEY_A = 'Zk9vYmFyLWtleS1vZi1hbGljZQ';
const personal = (key: string): SessionRoute => ({ mode: 'filtered', headers: [], personalKey: key });

describe('agent: session routes', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('opens several filtered and mirror sessions beside one global session and counts each', async () => {
    const agent = await fx.agent();
    const global = await fx.client(agent, { sessionId: 'alice-global' });
    await fx.client(agent, { route: personal(KEY_A), sessionId: 'bob' });
    await fx.client(agent, { route: { mode: 'mirror', headers: [], pathPrefix: '/api' } });
    const stats = await global.stats();
    assert.equal(stats.sessions, 3);
    const bySession = stats.bySession ?? {};
    assert.deepEqual(Object.keys(bySession).sort(), ['#3', 'alice-global', 'bob']);
    assert.equal(bySession.bob?.mode, 'filtered');
    assert.equal(bySession.bob?.routed, 0);
    assert.ok(!JSON.stringify(stats).includes(KEY_A), 'the personal key stays out of the stats');
    assert.equal(bySession['#3']?.filter, 'copies of path /api*');
  });

  it('refuses a second global session and an identical filter with a conflict', async () => {
    const agent = await fx.agent();
    await fx.client(agent, { sessionId: 'alice' });
    await fx.client(agent, { route: personal(KEY_A), sessionId: 'bob' });
    await assert.rejects(
      fx.client(agent, { sessionId: 'carol' }),
      (err) => isDevboxError(err, 'CONFLICT') && /every request/.test(String(err)),
    );
    await assert.rejects(
      fx.client(agent, { route: personal(KEY_A), sessionId: 'dave' }),
      (err) => isDevboxError(err, 'CONFLICT') && !String(err).includes(KEY_A),
    );
    assert.equal(Object.keys(agent.stats().bySession ?? {}).length, 2);
    // The same session reconnecting while its old connection lingers is let in.
    await fx.client(agent, { route: personal(KEY_A), sessionId: 'bob' });
  });

  it('refuses a route it cannot use and names the problem', async () => {
    const agent = await fx.agent();
    await assert.rejects(
      fx.client(agent, {
        route: { mode: 'filtered', headers: [{ name: 'x', value: '(a*)*b', regex: true }] },
      }),
      (err) => isDevboxError(err, 'BAD_INPUT') && /backtrack/.test(String(err)),
    );
    assert.deepEqual(agent.stats().bySession, {});
  });
});
