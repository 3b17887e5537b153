import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseQuantity, quantityMilliValue, quantityValue } from '../../../src/kube/env/quantity.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('parseQuantity', () => {
  const cases: [string, bigint, bigint][] = [
    // text, Value(), MilliValue()
    ['0', 0n, 0n],
    ['1', 1n, 1000n],
    ['250m', 1n, 250n],
    ['1500m', 2n, 1500n],
    ['0.5', 1n, 500n],
    ['.5', 1n, 500n],
    ['1.', 1n, 1000n],
    ['1k', 1000n, 1000000n],
    ['1Ki', 1024n, 1024000n],
    ['1.5Gi', 1610612736n, 1610612736000n],
    ['128Mi', 134217728n, 134217728000n],
    ['1M', 1000000n, 1000000000n],
    ['2e3', 2000n, 2000000n],
    ['2E3', 2000n, 2000000n],
    ['1e-3', 1n, 1n],
    ['1E', 10n ** 18n, 10n ** 21n],
    ['100n', 1n, 1n],
    ['1u', 1n, 1n],
    ['+3', 3n, 3000n],
    ['-1500m', -1n, -1500n],
  ];
  for (const [text, value, milli] of cases) {
    it(`${text} → ${value} / ${milli}m`, () => {
      const q = parseQuantity(text);
      assert.equal(quantityValue(q), value);
      assert.equal(quantityMilliValue(q), milli);
    });
  }

  it('rejects what the API rejects', () => {
    for (const bad of ['', 'abc', '1Xi', '1.2.3', 'Mi', '1e', '--1']) {
      assert.throws(
        () => parseQuantity(bad),
        (err: unknown) => isDevboxError(err, 'BAD_INPUT'),
        bad,
      );
    }
  });

  it('refuses an exponent no resource holds, at once (1e99999999999 threw a RangeError, 5e30000000 took seconds)', () => {
    for (const bad of ['1e99999999999', '1e-99999999999', '5e30000000', '1E1001']) {
      const started = Date.now();
      assert.throws(
        () => parseQuantity(bad),
        (err: unknown) => isDevboxError(err, 'BAD_INPUT') && err.message.includes(bad),
        bad,
      );
      assert.ok(Date.now() - started < 100, `${bad} took ${Date.now() - started} ms`);
    }
    assert.equal(quantityValue(parseQuantity('1e18')), 10n ** 18n);
  });
});
