import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseEntryRef } from '../../../src/session/share.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('share --entry', () => {
  it('reads kind/name with an optional Service port', () => {
    assert.deepEqual(parseEntryRef('deploy/storefront'), { workload: 'deploy/storefront' });
    assert.deepEqual(parseEntryRef(' api:8080 '), { workload: 'api', port: 8080 });
  });

  it('refuses a port out of range or a malformed value, naming the flag', () => {
    for (const bad of ['api:0', 'api:65536', 'api:', 'api:http', ':80', 'a:1:2']) {
      assert.throws(
        () => parseEntryRef(bad),
        (err) =>
          isDevboxError(err, 'BAD_INPUT') &&
          /--entry/.test(err.message) &&
          /kind\/name:port/.test(err.hint ?? ''),
        bad,
      );
    }
  });
});
