/**
 * Seeded fuzzing of what a browser (or anyone) sends a share-aware agent: Cookie and baggage
 * headers and request targets, near-valid and garbage. Nothing throws; the app never sees a share
 * cookie; only a live share's cookie pins a request; a link's redirect never loops and never
 * leaves the entry's host.
 */
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import { baggageMembers, baggageValue, withBaggageMember } from '../../../src/agent/http/baggage.js';
import { takeCookie } from '../../../src/agent/http/cookies.js';
import { applyShares, parseShareLink, ShareTable } from '../../../src/agent/http/share.js';
import { newShareKey, SHARE_COOKIE, SHARE_QUERY } from '../../../src/tunnel/share.js';
import { fuzz, type Rng } from '../../support/fuzz.js';

const HEADER_CHARS = 'ab=;, "\t%2F/\\?&#é-_devbox-session';

function noise(rng: Rng, max = 40): string {
  return rng.string(rng.int(max), HEADER_CHARS);
}

function cookieHeader(rng: Rng, keys: string[]): string {
  const pieces = Array.from({ length: rng.int(5) }, () => {
    switch (rng.int(5)) {
      case 0:
        return `${SHARE_COOKIE}=${rng.pick(keys)}`;
      case 1:
        return `${rng.pick([SHARE_COOKIE, ` ${SHARE_COOKIE} `, 'a', ''])}=${noise(rng, 10)}`;
      case 2:
        return `${SHARE_COOKIE}="${rng.pick(keys)}"`;
      default:
        return noise(rng, 12);
    }
  });
  return pieces.join(rng.pick(['; ', ';', ' ; ']));
}

function target(rng: Rng, keys: string[]): string {
  const path = rng.pick(['/', '/a/b', '//evil.example', '/\\evil.example', '', 'http://x/', noise(rng, 8)]);
  const params = Array.from({ length: rng.int(4) }, () =>
    rng.pick([
      `${SHARE_QUERY}=${rng.pick(keys)}`,
      SHARE_QUERY,
      `x${SHARE_QUERY}=1`,
      `q=${noise(rng, 6)}`,
      '',
      noise(rng, 6),
    ]),
  );
  return params.length ? `${path}?${params.join('&')}` : path;
}

describe('fuzz: cookie and baggage headers', () => {
  it('takeCookie never throws, finds each cookie once, and leaves none of that name behind', () => {
    fuzz('cookie header', { rounds: 3000 }, (rng) => {
      const header = rng.chance(4)
        ? rng.mutate(Buffer.from(cookieHeader(rng, ['k']))).toString('latin1')
        : cookieHeader(rng, ['k', 'v']);
      const { values, rest } = takeCookie(header, SHARE_COOKIE);
      if (rest !== undefined) {
        assert.deepEqual(takeCookie(rest, SHARE_COOKIE).values, [], `left in ${JSON.stringify(rest)}`);
        assert.equal(takeCookie(rest, SHARE_COOKIE).rest, rest, 'taking twice changes nothing more');
      }
      const named = header
        .split(';')
        .filter((p) => p.trim().split('=')[0]?.trim() === SHARE_COOKIE && p.includes('='));
      assert.equal(values.length, named.length);
    });
  });

  it('withBaggageMember puts the member first exactly once and keeps every other member', () => {
    fuzz('baggage header', { rounds: 3000 }, (rng) => {
      const members = Array.from({ length: rng.int(6) }, () =>
        rng.pick([
          `devbox-session=${noise(rng, 8)}`,
          `k${rng.int(9)}=v;p`,
          noise(rng, 12),
          ` devbox-session = x `,
        ]),
      );
      const header = rng.chance(3) ? members : members.join(rng.pick([',', ', ', ' ,']));
      const value = newShareKey();
      baggageValue(header, 'devbox-session');
      const merged = withBaggageMember(header, 'devbox-session', value);
      assert.equal(baggageValue(merged, 'devbox-session'), value);
      const others = baggageMembers(merged).slice(1);
      assert.ok(
        others.every(
          (m) => baggageValue(m, 'devbox-session') === undefined || !/^devbox-session\s*=/.test(m),
        ),
      );
      assert.deepEqual(
        others,
        baggageMembers(header).filter((m) => !/^devbox-session\s*=/.test(m)),
      );
    });
  });
});

describe('fuzz: requests to a share-aware agent', () => {
  it('never throw, never show the app a share cookie, pin only live shares, and redirect once within the host', () => {
    fuzz('share requests', { rounds: 3000 }, (rng) => {
      const now = 1_000_000;
      const table = new ShareTable(() => now);
      const live = newShareKey();
      const expired = newShareKey();
      table.add({ key: live, sessionKey: 'the-session-key', expiresAt: now + 1000 });
      table.add({ key: expired, sessionKey: 'old-session-key', expiresAt: now });
      const keys = [live, expired, newShareKey(), '', 'short'];
      const headers: IncomingHttpHeaders = {};
      if (!rng.chance(4)) headers.cookie = cookieHeader(rng, keys);
      if (rng.chance(2)) headers.baggage = rng.chance(2) ? noise(rng) : ['a=1', noise(rng)];
      const before = structuredClone(headers);
      const path = target(rng, keys);
      const answer = applyShares(table, { method: rng.pick(['GET', 'POST', 'HEAD']), path, headers });
      if (answer) {
        const location = answer.headers.location!;
        assert.ok(
          location.startsWith('/') && !/^\/[/\\]/.test(location),
          `location ${location} leaves the host`,
        );
        assert.equal(parseShareLink(location), undefined, 'the redirect carries no share key');
        const pinned = parseShareLink(path)!.keys.includes(live);
        assert.equal(answer.headers['set-cookie']?.startsWith(`${SHARE_COOKIE}=${live};`) ?? false, pinned);
        assert.deepEqual(headers, before, 'an answered request is not rewritten');
        return;
      }
      assert.equal(
        takeCookie(headers.cookie ?? '', SHARE_COOKIE).values.length,
        0,
        'the app sees no share cookie',
      );
      const hadLive = takeCookie(before.cookie ?? '', SHARE_COOKIE).values.includes(live);
      assert.equal(headers['x-devbox-session'], hadLive ? 'the-session-key' : undefined);
      if (hadLive) assert.equal(baggageValue(headers.baggage, 'devbox-session'), 'the-session-key');
      else assert.deepEqual(headers.baggage, before.baggage);
    });
  });
});
