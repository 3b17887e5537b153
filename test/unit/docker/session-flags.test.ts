import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePublishFlag, parseVolumeFlag } from '../../../src/docker/session-flags.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('parsePublishFlag', () => {
  it('reads the forms docker run accepts', () => {
    assert.deepEqual(parsePublishFlag('8080:3000'), { containerPort: 3000, hostPort: 8080 });
    assert.deepEqual(parsePublishFlag('3000'), { containerPort: 3000 });
    assert.deepEqual(parsePublishFlag('5353:53/udp'), { containerPort: 53, hostPort: 5353, protocol: 'udp' });
    assert.deepEqual(parsePublishFlag('8080:3000/tcp'), { containerPort: 3000, hostPort: 8080 });
    assert.deepEqual(parsePublishFlag('127.0.0.1:8080:3000'), {
      containerPort: 3000,
      hostPort: 8080,
      hostIp: '127.0.0.1',
    });
    assert.deepEqual(parsePublishFlag('127.0.0.1::3000'), { containerPort: 3000, hostIp: '127.0.0.1' });
    assert.deepEqual(parsePublishFlag('[::1]:8080:3000'), {
      containerPort: 3000,
      hostPort: 8080,
      hostIp: '::1',
    });
  });

  it('refuses the rest with a BAD_INPUT that shows the form', () => {
    for (const bad of [
      '',
      'x:3000',
      '8080:0',
      '8080:70000',
      '8080:3000/sctp',
      '::1:8080:3000',
      '8080:3000/udp/x',
    ]) {
      assert.throws(
        () => parsePublishFlag(bad),
        (err) => isDevboxError(err, 'BAD_INPUT') && /-p <host port>:<container port>/.test(err.hint ?? ''),
        bad,
      );
    }
  });
});

describe('parseVolumeFlag', () => {
  it('reads source:target[:ro|rw]', () => {
    assert.deepEqual(parseVolumeFlag('./src:/app/src'), { source: './src', target: '/app/src' });
    assert.deepEqual(parseVolumeFlag('/data:/data:ro'), { source: '/data', target: '/data', readOnly: true });
    assert.deepEqual(parseVolumeFlag('/data:/data:rw'), { source: '/data', target: '/data' });
  });

  it('refuses a relative target, a missing part or an unknown option', () => {
    for (const bad of ['/data', '/data:data', ':/data', '/a:/b:rx', '/a:/b:ro:x']) {
      assert.throws(
        () => parseVolumeFlag(bad),
        (err) => isDevboxError(err, 'BAD_INPUT'),
        bad,
      );
    }
  });
});
