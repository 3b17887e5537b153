import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { podsRouted } from '../../../src/session/status.js';

const totals = (intercepted: number, passedThrough: number, handedOver: number, localRefused?: number) => ({
  totals: { intercepted, passedThrough, handedOver, localRefused, tcpOpened: 0, dnsQueries: 0 },
});

describe('where the agents sent connections', () => {
  it('sums the pods that answered and leaves out those that did not', () => {
    assert.deepEqual(
      podsRouted({ 'api-1': totals(5, 2, 1, 2), 'api-2': totals(3, 0, 0), 'api-3': { error: 'timeout' } }),
      { toSession: 8, toPodApp: 2, handedOver: 1, localRefused: 2 },
    );
  });

  it('is nothing when no agent answered', () => {
    assert.equal(podsRouted(undefined), undefined);
    assert.equal(podsRouted({ 'api-1': { error: 'timeout' } }), undefined);
  });
});
