import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEnvFlags } from '../../../src/session/flags.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('parseEnvFlags', () => {
  it('reads KEY=value, keeps later = signs, and passes KEY through from the shell', () => {
    assert.deepEqual(parseEnvFlags(['A=1', 'B=x=y', 'HOME_DIR', 'MISSING'], { HOME_DIR: '/root' }), {
      A: '1',
      B: 'x=y',
      HOME_DIR: '/root',
    });
  });

  it('names every bad flag at once', () => {
    assert.throws(
      () => parseEnvFlags(['1A=x', '=y', 'OK=1']),
      (err) => isDevboxError(err, 'BAD_INPUT') && /1A=x/.test(err.message) && /=y/.test(err.message),
    );
  });
});
