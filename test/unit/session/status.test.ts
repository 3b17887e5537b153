import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SessionRecord } from '../../../src/kube/index.js';
import { describePodsRouted, podsRouted } from '../../../src/session/status.js';
import { requestsToApp, workloadSessions } from '../../../src/session/workload-sessions.js';

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

describe("a workload's sessions in status", () => {
  const record: SessionRecord[] = [
    {
      user: 'alice',
      host: 'laptop',
      startedAt: '',
      id: 'a1',
      name: 'alice',
      kind: 'local',
      route: { mode: 'filtered', headers: [], personal: true },
    },
    {
      user: 'bob',
      host: 'desk',
      startedAt: '',
      id: 'b1',
      name: 'bob',
      kind: 'local',
      route: { mode: 'mirror', headers: [{ name: 'x-user', value: 'bob' }] },
    },
  ];

  it('lists each with its filter and its requests summed over the agents that know it', () => {
    const agents = {
      'api-1': {
        bySession: { a1: { routed: 3, mirrored: 0, dropped: 0 }, b1: { routed: 0, mirrored: 4, dropped: 1 } },
      },
      'api-2': { bySession: { a1: { routed: 2, mirrored: 0, dropped: 0 } } },
      'api-3': { error: 'timeout' },
    };
    assert.deepEqual(workloadSessions(record, agents), [
      {
        id: 'a1',
        name: 'alice',
        user: 'alice',
        host: 'laptop',
        startedAt: '',
        mode: 'filtered',
        filter: "x-devbox-session: <this session's key>",
        requests: { routed: 5, mirrored: 0, dropped: 0 },
      },
      {
        id: 'b1',
        name: 'bob',
        user: 'bob',
        host: 'desk',
        startedAt: '',
        mode: 'mirror',
        filter: 'copies of x-user: bob',
        requests: { routed: 0, mirrored: 4, dropped: 1 },
      },
    ]);
  });

  it('leaves out counters no agent reported, and sums what went to the app', () => {
    assert.equal(workloadSessions(record, undefined)[0]?.requests, undefined);
    assert.equal(requestsToApp({ 'api-1': { totals: { toApp: 2 } }, 'api-2': { totals: { toApp: 5 } } }), 7);
    assert.equal(requestsToApp({ 'api-1': { totals: {} } }), undefined);
  });
});

describe('the line of where the agents sent connections', () => {
  it('names the connections the local app refused and the pod served', () => {
    assert.equal(
      describePodsRouted({ toSession: 8, toPodApp: 2, handedOver: 1, localRefused: 3 }),
      "at the pods: 8 connections sent to you, 2 to the pod's app (1 later closed so that their clients reconnect to you); 3 of yours refused by your app (not listening) and served by the pod's app instead",
    );
  });

  it('leaves out what did not happen', () => {
    assert.equal(
      describePodsRouted({ toSession: 4, toPodApp: 0, handedOver: 0, localRefused: 0 }),
      "at the pods: 4 connections sent to you, 0 to the pod's app",
    );
  });
});
