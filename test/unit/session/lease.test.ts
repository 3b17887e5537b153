import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { leaseState } from '../../../src/session/lease.js';
import { LEASE_DURATION_SECONDS, microTime, sessionLeaseName } from '../../../src/util/session-lease.js';

const lease = (renewTime: string | undefined, leaseDurationSeconds = LEASE_DURATION_SECONDS) => ({
  metadata: { name: sessionLeaseName('3f2a') },
  spec: { holderIdentity: 'alice@laptop', leaseDurationSeconds, renewTime: renewTime as never },
});

describe('session lease', () => {
  const now = Date.parse('2026-05-01T10:00:30Z');

  it('is live while renewed within its duration, and says how long ago', () => {
    assert.deepEqual(leaseState(lease('2026-05-01T10:00:25.000000Z'), now), {
      live: true,
      renewedSecondsAgo: 5,
    });
    assert.deepEqual(leaseState(lease('2026-05-01T10:00:05.000000Z'), now), {
      live: false,
      renewedSecondsAgo: 25,
    });
    assert.equal(leaseState(lease('2026-05-01T10:00:05.000000Z', 60), now).live, true);
  });

  it('is dead without a lease, a renewal, or with a renewal that is not a time', () => {
    assert.deepEqual(leaseState(undefined, now), { live: false });
    assert.deepEqual(leaseState(lease(undefined), now), { live: false });
    assert.deepEqual(leaseState(lease('soon'), now), { live: false });
  });

  it('writes MicroTime with six fractional digits, as the API server requires', () => {
    assert.equal(microTime(new Date('2026-05-01T10:00:30.123Z')), '2026-05-01T10:00:30.123000Z');
    assert.equal(sessionLeaseName('3f2a'), 'devbox-session-3f2a');
  });
});
