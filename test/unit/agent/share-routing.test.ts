/**
 * Share links in a running agent: the link is answered by the agent; the browser's cookie brings
 * its requests to the personal session with the key in x-devbox-session and baggage; neither the
 * session's app nor the pod's app sees the cookie; other callers reach the pod; and the link and
 * cookie do nothing once the session that sent the share is gone.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { newShareKey } from '../../../src/tunnel/share.js';
import { eventually, Fixtures } from '../tunnel/harness.js';
import { ALICE, agentFor, BOB, httpApp, personal, request, sessionTo } from './http-fixtures.js';

describe('agent: share links', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('stop pinning once the session revokes them', async () => {
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod.port);
    const session = await sessionTo(fx, agent, personal(ALICE), alice.port, 'alice');
    const key = newShareKey();
    session.share({ key, sessionKey: ALICE, expiresAt: Date.now() + 60_000 });
    const cookie = `devbox-session=${key}`;
    await eventually(
      async () => (await request(port, { headers: { cookie } })).body === 'alice GET /',
      3_000,
      'the share reached the agent',
    );
    session.revokeShare(key);
    await eventually(
      async () => (await request(port, { headers: { cookie } })).body === 'pod GET /',
      3_000,
      'the revoke reached the agent',
    );
    const link = await request(port, { path: `/?devbox-share=${key}` });
    assert.deepEqual([link.status, link.headers['set-cookie']], [302, undefined]);
  });

  it('pin a browser to the session that shared, and end with it', async () => {
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod.port);
    const session = await sessionTo(fx, agent, personal(ALICE), alice.port, 'alice');
    // Another developer's session stays: the port keeps routing HTTP after alice's ends.
    await sessionTo(fx, agent, personal(BOB), (await httpApp(fx, 'bob')).port, 'bob');
    assert.ok(session.hello.features?.includes('shares'));
    const key = newShareKey();
    session.share({ key, sessionKey: ALICE, expiresAt: Date.now() + 60_000 });

    let link = await request(port, { path: `/cart?devbox-share=${key}` });
    await eventually(
      async () => {
        link = await request(port, { path: `/cart?devbox-share=${key}` });
        return link.headers['set-cookie'] !== undefined;
      },
      3_000,
      'the share reached the agent',
    );
    assert.equal(link.status, 302);
    assert.equal(link.headers.location, '/cart');
    const cookie = link.headers['set-cookie']![0]!.split(';')[0]!;
    assert.equal(cookie, `devbox-session=${key}`);

    const pinned = await request(port, {
      path: '/cart',
      headers: { cookie: `theme=dark; ${cookie}`, baggage: 'k=v' },
    });
    assert.equal(pinned.body, 'alice GET /cart');
    const seen = alice.seen.at(-1)!.headers;
    assert.equal(seen.cookie, 'theme=dark');
    assert.equal(seen['x-devbox-session'], ALICE);
    assert.equal(seen.baggage, `devbox-session=${ALICE}, k=v`);
    assert.equal((await request(port, { path: '/cart' })).body, 'pod GET /cart');
    assert.ok(
      pod.seen.every((r) => !String(r.url).includes(key)),
      'the pod never saw the key',
    );

    await session.close();
    const after = await request(port, { path: '/cart', headers: { cookie } });
    assert.equal(after.body, 'pod GET /cart');
    assert.equal(pod.seen.at(-1)!.headers.cookie, undefined, 'the dead cookie is kept from the app too');
    const oldLink = await request(port, { path: `/cart?devbox-share=${key}` });
    assert.deepEqual(
      [oldLink.status, oldLink.headers.location, oldLink.headers['set-cookie']],
      [302, '/cart', undefined],
    );
  });
});
