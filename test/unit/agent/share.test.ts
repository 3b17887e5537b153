/**
 * Share links in the entry agent: the link answers with a redirect and a host-only cookie, the
 * cookie pins later requests to the personal session through `x-devbox-session` and `baggage`,
 * and anything forged, expired or revoked changes nothing the app would notice.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import { baggageValue, withBaggageMember } from '../../../src/agent/http/baggage.js';
import { takeCookie } from '../../../src/agent/http/cookies.js';
import { applyShares, parseShareLink, type ShareRequest, ShareTable } from '../../../src/agent/http/share.js';
import { isShareKeyShape, newShareKey, SHARE_COOKIE } from '../../../src/tunnel/share.js';

const SESSION_KEY = 'personal-key-of-the-session-0123456789abcdef';

function tableAt(clock: { now: number }) {
  const table = new ShareTable(() => clock.now);
  const key = newShareKey();
  table.add({ key, sessionKey: SESSION_KEY, expiresAt: clock.now + 3_600_000 });
  return { table, key };
}

function request(path: string, headers: IncomingHttpHeaders = {}, method = 'GET'): ShareRequest {
  return { method, path, headers: { host: 'shop.example', ...headers } };
}

describe('share keys', () => {
  it('are 256 random bits in base64url, and only that shape is looked up', () => {
    const keys = new Set(Array.from({ length: 1000 }, newShareKey));
    assert.equal(keys.size, 1000);
    for (const key of keys) {
      assert.match(key, /^[A-Za-z0-9_-]{43}$/);
      assert.ok(isShareKeyShape(key));
    }
    for (const bad of [
      '',
      'short',
      'a'.repeat(87),
      `${'a'.repeat(30)}=`,
      `${'a'.repeat(30)} `,
      '../etc/passwd',
    ]) {
      assert.equal(isShareKeyShape(bad), false, bad);
    }
  });
});

describe('a share link', () => {
  it('redirects to the same place without the key and sets a host-only, HttpOnly, SameSite=Lax cookie', () => {
    const clock = { now: 1_000_000 };
    const { table, key } = tableAt(clock);
    const req = request(`/?devbox-share=${key}`);
    const answer = applyShares(table, req);
    assert.equal(answer?.status, 302);
    assert.equal(answer.headers.location, '/');
    assert.equal(answer.headers['cache-control'], 'no-store');
    assert.equal(
      answer.headers['set-cookie'],
      `${SHARE_COOKIE}=${key}; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax`,
    );
    assert.doesNotMatch(answer.headers['set-cookie']!, /Domain=/i);
  });

  it('keeps the rest of the path and query, and drops every share parameter', () => {
    const { table, key } = tableAt({ now: 0 });
    const answer = applyShares(table, request(`/cart/items?a=1&devbox-share=${key}&b=2&devbox-share=x`));
    assert.equal(answer?.headers.location, '/cart/items?a=1&b=2');
    assert.deepEqual(parseShareLink('/x?devbox-share'), { keys: [''], cleanPath: '/x' });
    assert.equal(parseShareLink('/x?devbox-shared=1'), undefined);
    assert.equal(parseShareLink('/devbox-share'), undefined);
  });

  it('never redirects to another host', () => {
    const { table, key } = tableAt({ now: 0 });
    for (const path of ['//evil.example/', '/\\evil.example/', '///evil.example/']) {
      assert.equal(
        applyShares(table, request(`${path}?devbox-share=${key}`))?.headers.location,
        '/evil.example/',
      );
    }
  });

  it('is Secure behind an HTTPS Ingress, and 303 for methods other than GET and HEAD', () => {
    const { table, key } = tableAt({ now: 0 });
    const secure = applyShares(table, request(`/?devbox-share=${key}`, { 'x-forwarded-proto': 'https' }));
    assert.match(secure?.headers['set-cookie'] ?? '', /; Secure$/);
    assert.equal(applyShares(table, request(`/?devbox-share=${key}`, {}, 'HEAD'))?.status, 302);
    assert.equal(applyShares(table, request(`/?devbox-share=${key}`, {}, 'POST'))?.status, 303);
  });

  it('that is forged, expired or revoked still redirects (the app never sees the key) but sets no cookie', () => {
    const clock = { now: 0 };
    const { table, key } = tableAt(clock);
    const other = tableAt(clock);
    const forged = applyShares(table, request(`/?devbox-share=${newShareKey()}`));
    assert.equal(forged?.status, 302);
    assert.equal(forged.headers['set-cookie'], undefined);
    assert.equal(applyShares(table, request('/?devbox-share=not-a-key'))?.headers['set-cookie'], undefined);

    clock.now += 3_600_000;
    assert.equal(applyShares(table, request(`/?devbox-share=${key}`))?.headers['set-cookie'], undefined);
    assert.equal(table.size, 0, 'the expired share is dropped');

    other.table.remove(other.key);
    assert.equal(
      applyShares(other.table, request(`/?devbox-share=${other.key}`))?.headers['set-cookie'],
      undefined,
    );
  });
});

describe("a request carrying a share's cookie", () => {
  it('goes on with the session key in x-devbox-session and baggage, and without the cookie', () => {
    const { table, key } = tableAt({ now: 0 });
    const req = request('/products', {
      cookie: `theme=dark; ${SHARE_COOKIE}=${key}; cart=42`,
      baggage: 'userId=alice, devbox-session=someone-else;p=1',
      'x-devbox-session': 'someone-else',
    });
    assert.equal(applyShares(table, req), undefined);
    assert.equal(req.headers.cookie, 'theme=dark; cart=42');
    assert.equal(req.headers['x-devbox-session'], SESSION_KEY);
    assert.equal(req.headers.baggage, `devbox-session=${SESSION_KEY}, userId=alice`);
    assert.equal(baggageValue(req.headers.baggage, 'devbox-session'), SESSION_KEY);
  });

  it('gets baggage of its own when it had none, and loses the cookie header when that was all', () => {
    const { table, key } = tableAt({ now: 0 });
    const req = request('/', { cookie: `${SHARE_COOKIE}=${key}` });
    applyShares(table, req);
    assert.equal('cookie' in req.headers, false);
    assert.equal(req.headers.baggage, `devbox-session=${SESSION_KEY}`);
  });

  it('that is forged, expired or revoked adds nothing; the cookie is still kept from the app', () => {
    const clock = { now: 0 };
    const { table, key } = tableAt(clock);
    for (const cookie of [
      `${SHARE_COOKIE}=${newShareKey()}`,
      `${SHARE_COOKIE}=`,
      `${SHARE_COOKIE}="${'z'.repeat(9)}"`,
    ]) {
      const req = request('/', { cookie: `a=1; ${cookie}`, baggage: 'k=v' });
      applyShares(table, req);
      assert.deepEqual(req.headers, { host: 'shop.example', cookie: 'a=1', baggage: 'k=v' });
    }
    table.remove(key);
    const revoked = request('/', { cookie: `${SHARE_COOKIE}=${key}` });
    applyShares(table, revoked);
    assert.deepEqual(revoked.headers, { host: 'shop.example' });
  });

  it('with a stale cookie beside a live one follows the live one', () => {
    const { table, key } = tableAt({ now: 0 });
    const req = request('/', { cookie: `${SHARE_COOKIE}=${newShareKey()}; ${SHARE_COOKIE}=${key}` });
    applyShares(table, req);
    assert.equal(req.headers['x-devbox-session'], SESSION_KEY);
  });

  it('without any devbox cookie is left exactly as it was', () => {
    const { table } = tableAt({ now: 0 });
    const headers = { host: 'h', cookie: 'devbox-sessionx=1; a=2', baggage: 'devbox-session=mine' };
    const req = request('/', headers);
    applyShares(table, req);
    assert.deepEqual(req.headers, { ...headers });
  });
});

describe('cookie and baggage headers', () => {
  it('takeCookie finds every cookie of a name, quoted or not, and keeps the rest in order', () => {
    assert.deepEqual(takeCookie(' a=1;b = 2 ;a="3"; c; ;d=4=5', 'a'), {
      values: ['1', '3'],
      rest: 'b = 2; c; d=4=5',
    });
    assert.deepEqual(takeCookie('b=2', 'b'), { values: ['2'], rest: undefined });
  });

  it('baggage: the first member wins, values are percent-decoded, properties ignored', () => {
    assert.equal(
      baggageValue('a=1, devbox-session = k%2F1 ;prop=x, devbox-session=k2', 'devbox-session'),
      'k/1',
    );
    assert.equal(baggageValue(['a=1', 'devbox-session=k3'], 'devbox-session'), 'k3');
    assert.equal(baggageValue('devbox-session=%zz', 'devbox-session'), undefined);
    assert.equal(baggageValue(undefined, 'devbox-session'), undefined);
    assert.equal(
      withBaggageMember(['x=1', ' , devbox-session=old,y=2;p'], 'devbox-session', 'new'),
      'devbox-session=new, x=1, y=2;p',
    );
  });
});
