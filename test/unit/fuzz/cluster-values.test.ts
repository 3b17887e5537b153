/**
 * Seeded fuzzing of values devbox reads from the cluster and the pod: resource quantities
 * (resources, downward-API divisors) and the pod's resolv.conf, read by the agent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseResolvConf } from '../../../src/agent/resolv-conf.js';
import { parseQuantity, quantityMilliValue, quantityValue } from '../../../src/kube/env/quantity.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { fuzz, onlyTypedErrors } from '../../support/fuzz.js';

const DECIMAL: Record<string, number> = { n: -9, u: -6, m: -3, '': 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY: Record<string, number> = { Ki: 10, Mi: 20, Gi: 30, Ti: 40, Pi: 50, Ei: 60 };

describe('fuzz: values from the cluster', () => {
  it('a quantity parses to an exact rational or is BAD_INPUT, at once', () => {
    fuzz('quantities', { rounds: 4000 }, (rng) => {
      const text = rng.string(rng.int(16), '0123456789.+-eEinumkKMGTPEi ');
      const q = onlyTypedErrors(
        (e) => isDevboxError(e, 'BAD_INPUT'),
        () => parseQuantity(text),
        text,
      );
      if (!q) return;
      assert.ok(q.den > 0n, text);
      assert.ok(quantityMilliValue(q) >= quantityValue(q) * 1000n - 999n, text);
    });
  });

  it('a quantity written with any suffix reads back as its value', () => {
    fuzz('quantity round trip', { rounds: 3000 }, (rng) => {
      const n = BigInt(rng.int(1_000_000));
      const negative = rng.chance(5);
      const [suffix, q] = rng.chance(2)
        ? (() => {
            const s = rng.pick(Object.keys(DECIMAL));
            return [
              s,
              {
                num: n * 10n ** BigInt(Math.max(DECIMAL[s]!, 0)),
                den: 10n ** BigInt(Math.max(-DECIMAL[s]!, 0)),
              },
            ];
          })()
        : (() => {
            const s = rng.pick(Object.keys(BINARY));
            return [s, { num: n << BigInt(BINARY[s]!), den: 1n }];
          })();
      const parsed = parseQuantity(`${negative ? '-' : ''}${n}${suffix}`);
      assert.equal(parsed.num * q.den, (negative ? -q.num : q.num) * parsed.den, `${n}${suffix}`);
    });
  });

  it("the pod's resolv.conf always reads to bounded settings, never an error", () => {
    fuzz('resolv.conf', { rounds: 2000 }, (rng) => {
      const line = () =>
        `${rng.pick(['nameserver', 'search', 'domain', 'options', '#', '', rng.string(4, 'ns')])} ${rng.string(
          rng.int(40),
          '0123456789.:[]abf ndotsimeoutattempts#;\t-',
        )}`;
      const text = Array.from({ length: rng.int(12) }, line).join(rng.pick(['\n', '\r\n']));
      const conf = parseResolvConf(text);
      assert.ok(conf.nameservers.length <= 8);
      for (const ns of conf.nameservers)
        assert.ok(ns.port >= 1 && ns.port <= 65535 && ns.host !== '', JSON.stringify(ns));
      assert.ok(conf.timeoutMs >= 1000 && conf.timeoutMs <= 30_000, text);
      assert.ok(conf.attempts >= 1 && conf.attempts <= 5, text);
      assert.ok(conf.ndots >= 0 && conf.ndots <= 15, text);
      assert.ok(conf.search.length <= 32, text);
    });
  });
});
