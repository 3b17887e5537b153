import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  curlLine,
  newPersonalKey,
  recordedRoute,
  routeFromFlags,
  sameRecordedFilter,
} from '../../../src/session/route-flags.js';
import { isDevboxError } from '../../../src/util/errors.js';

const none = { headers: [], personal: false, mirror: false };

describe('route flags', () => {
  it('is a global route without filters', () => {
    assert.deepEqual(routeFromFlags(none), { mode: 'global', headers: [] });
  });

  it('reads exact and /regex/ header values, names lower-cased, with a path prefix', () => {
    const route = routeFromFlags({
      ...none,
      headers: ['X-User=alice', 'x-tenant=/^t-[0-9]+$/'],
      pathPrefix: '/api/',
    });
    assert.deepEqual(route, {
      mode: 'filtered',
      headers: [
        { name: 'x-user', value: 'alice' },
        { name: 'x-tenant', value: '^t-[0-9]+$', regex: true },
      ],
      pathPrefix: '/api/',
    });
  });

  it('gives every personal session a fresh key of at least 128 bits', () => {
    const a = routeFromFlags({ ...none, personal: true }).personalKey ?? '';
    const b = routeFromFlags({ ...none, personal: true }).personalKey ?? '';
    assert.notEqual(a, b);
    assert.ok(Buffer.from(a, 'base64url').length >= 16, a);
  });

  it('takes the key it is given, so that one up of several workloads shares one key', () => {
    const key = newPersonalKey();
    assert.equal(routeFromFlags({ ...none, personal: true, personalKey: key }).personalKey, key);
  });

  it('mirrors everything, or what the filters match', () => {
    assert.deepEqual(routeFromFlags({ ...none, mirror: true }), { mode: 'mirror', headers: [] });
    assert.equal(routeFromFlags({ ...none, mirror: true, pathPrefix: '/a' }).mode, 'mirror');
  });

  it('refuses every bad value at once, naming each flag', () => {
    assert.throws(
      () =>
        routeFromFlags({
          ...none,
          headers: ['novalue', 'bad name=x', 'x-devbox-session=k', 'host=a', 'x-a=/(/'],
          pathPrefix: 'api',
        }),
      (err: unknown) => {
        const text = (err as Error).message;
        return (
          isDevboxError(err, 'BAD_INPUT') &&
          /"novalue": write NAME=VALUE/.test(text) &&
          /"bad name" is not an HTTP header name/.test(text) &&
          /use --personal/.test(text) &&
          /host cannot be filtered/.test(text) &&
          /\/\(\/ is not a regular expression/.test(text) &&
          /--http-path-prefix "api"/.test(text)
        );
      },
    );
  });

  it('records whether a route has a key, never the key', () => {
    const route = routeFromFlags({ ...none, personal: true });
    const recorded = recordedRoute(route);
    assert.deepEqual(recorded, { mode: 'filtered', headers: [], personal: true });
    assert.ok(!JSON.stringify(recorded).includes(route.personalKey ?? '?'));
  });

  it('tells identical filters apart from personal ones', () => {
    const a = recordedRoute(routeFromFlags({ ...none, headers: ['x-a=1', 'x-b=2'] }));
    const b = recordedRoute(routeFromFlags({ ...none, headers: ['x-b=2', 'x-a=1'] }));
    assert.ok(sameRecordedFilter(a, b), 'order of headers does not matter');
    assert.ok(!sameRecordedFilter(a, recordedRoute(routeFromFlags({ ...none, headers: ['x-a=1'] }))));
    const p = recordedRoute(routeFromFlags({ ...none, personal: true }));
    assert.ok(!sameRecordedFilter(p, p), 'each personal session has its own key');
  });

  it('writes a curl line with the key, the exact headers and the path, quoted for a shell', () => {
    const route = routeFromFlags({ ...none, personal: true, headers: ["x-q=it's"], pathPrefix: '/v1/' });
    assert.equal(
      curlLine(route, 'http://api.shop:8080'),
      `curl -H 'x-devbox-session: ${route.personalKey}' -H 'x-q: it'\\''s' 'http://api.shop:8080/v1/'`,
    );
  });
});
