import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toAgentPod } from '../../../src/sidecar/resources.js';

/** A Running pod of the workload's labels, with the containers and readiness given. */
function pod(containers: string[], ready: Record<string, boolean>) {
  return {
    metadata: { name: 'api-1', uid: 'u1', labels: { app: 'api' } },
    spec: { containers: containers.map((name) => ({ name })) },
    status: {
      phase: 'Running',
      podIP: '10.244.0.9',
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: Object.entries(ready).map(([name, r]) => ({ name, ready: r })),
    },
  };
}

describe('agent pods', () => {
  it('a ready pod running the agent container is dialed', () => {
    assert.equal(toAgentPod(pod(['app', 'devbox-agent'], { app: true, 'devbox-agent': true })).ready, true);
  });

  it('a Ready pod with the labels but no agent container is never dialed', () => {
    assert.equal(toAgentPod(pod(['app'], { app: true })).ready, false);
  });

  it('a status naming the agent container that the spec does not run is not trusted', () => {
    assert.equal(toAgentPod(pod(['app'], { app: true, 'devbox-agent': true })).ready, false);
  });

  it('an agent container that is not ready waits, whatever the pod says', () => {
    assert.equal(toAgentPod(pod(['app', 'devbox-agent'], { app: true, 'devbox-agent': false })).ready, false);
  });
});
