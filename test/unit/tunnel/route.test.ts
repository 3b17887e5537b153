import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  carriesKey,
  decodeRoute,
  encodeRoute,
  RouteMatcher,
  routeProblems,
  type SessionRoute,
  sameFilter,
  validateRoute,
} from '../../../src/tunnel/route.js';
import { isDevboxError } from '../../../src/util/errors.js';

const KEY = 'k3Y-0123456789abcdefghij'; // 24 base64url characters: 144 bits

describe('session routes', () => {
  it('accepts tokens, safe regexes, a path prefix and a long enough key', () => {
    const route: SessionRoute = {
      mode: 'filtered',
      headers: [
        { name: 'x-tenant', value: 'acme' },
        { name: 'user-agent', value: '^curl/[0-9.]+$', regex: true },
      ],
      pathPrefix: '/api/',
      personalKey: KEY,
    };
    assert.deepEqual(routeProblems(route), []);
    assert.deepEqual(decodeRoute(encodeRoute(route)), route);
  });

  it('names every problem at once', () => {
    const problems = routeProblems({
      mode: 'filtered',
      headers: [
        { name: 'bad name', value: 'x' },
        { name: 'x-a', value: '(a+)+$', regex: true },
        { name: 'x-b', value: '([', regex: true },
        { name: 'x-c', value: 'one\r\ntwo' },
      ],
      pathPrefix: 'api',
      personalKey: 'short',
    });
    assert.equal(problems.length, 6, problems.join('\n'));
    assert.match(problems.join('\n'), /"bad name" is not an HTTP token/);
    assert.match(problems.join('\n'), /\/\(a\+\)\+\$\/ .*backtrack catastrophically/);
    assert.match(problems.join('\n'), /does not compile/);
    assert.match(problems.join('\n'), /line break/);
    assert.match(problems.join('\n'), /must start with '\/'/);
    assert.match(problems.join('\n'), /at least 128 bits/);
    assert.throws(
      () => validateRoute({ mode: 'mirror', headers: [], pathPrefix: 'x' }),
      (err) => isDevboxError(err, 'BAD_INPUT') && !String(err).includes(KEY),
    );
  });

  it('matches all headers, the path prefix and the key from x-devbox-session or baggage', () => {
    const m = new RouteMatcher({
      mode: 'filtered',
      headers: [{ name: 'x-tenant', value: '^ac', regex: true }],
      pathPrefix: '/api',
      personalKey: KEY,
    });
    assert.equal(m.hasHeaderFilter, true);
    assert.equal(m.matches({ 'x-tenant': 'acme', 'x-devbox-session': KEY }, '/api/x'), true);
    assert.equal(m.matches({ 'x-tenant': 'acme', 'x-devbox-session': KEY }, '/web'), false);
    assert.equal(m.matches({ 'x-tenant': 'zz', 'x-devbox-session': KEY }, '/api'), false);
    assert.equal(m.matches({ 'x-tenant': 'acme' }, '/api'), false);
    assert.equal(
      m.matches({ 'x-tenant': 'acme', baggage: `userId=7, devbox-session=${KEY};p=1` }, '/api'),
      true,
    );
    assert.equal(carriesKey({ baggage: `devbox-session=${KEY}x` }, KEY), false);
    assert.equal(carriesKey({ baggage: ['a=1', `devbox-session = ${KEY}`] }, KEY), true);
    assert.equal(
      new RouteMatcher({ mode: 'filtered', headers: [], pathPrefix: '/a' }).hasHeaderFilter,
      false,
    );
  });

  it('tells identical filters apart from different ones', () => {
    const a: SessionRoute = {
      mode: 'filtered',
      headers: [
        { name: 'x-a', value: '1' },
        { name: 'x-b', value: '2' },
      ],
    };
    const b: SessionRoute = { mode: 'filtered', headers: [...a.headers].reverse() };
    assert.equal(sameFilter(a, b), true);
    assert.equal(sameFilter(a, { ...b, mode: 'mirror' }), false);
    assert.equal(sameFilter(a, { ...b, pathPrefix: '/' }), false);
    assert.equal(sameFilter({ mode: 'global', headers: [] }, { mode: 'global', headers: [] }), true);
  });
});
