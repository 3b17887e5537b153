import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InterceptedPort } from '../../../src/kube/intercept.js';
import {
  blockingPolicies,
  describeBlocking,
  type NetworkPolicyLike,
} from '../../../src/kube/network-policy.js';

const labels = { app: 'api', tier: 'web' };
/** service/api:80 → app port 8080 (named `http`), moved to agent port 47002, which takes the name. */
const moved: InterceptedPort = {
  service: 'api',
  port: 80,
  protocol: 'TCP',
  originalTargetPort: 'http',
  appPort: 8080,
  agentPort: 47002,
  agentPortName: 'http',
};
const named = new Map([[8080, 'http']]);

function policy(name: string, spec: NetworkPolicyLike['spec']): NetworkPolicyLike {
  return { metadata: { name }, spec };
}

const byNumber = policy('allow-8080', {
  podSelector: { matchLabels: { app: 'api' } },
  policyTypes: ['Ingress'],
  ingress: [{ ports: [{ port: 8080, protocol: 'TCP' }] }],
});

describe('NetworkPolicies and the moved port', () => {
  it('a policy admitting the app port by number, not the agent port, blocks the session', () => {
    const blocking = blockingPolicies([byNumber], labels, [moved], named);
    assert.deepEqual(blocking, [{ policy: 'allow-8080', port: moved }]);
    const text = describeBlocking(blocking, 'shop');
    assert.match(text, /networkpolicy\/allow-8080/);
    assert.match(text, /add \{port: 47002, protocol: TCP\}/);
    assert.match(text, /kubectl -n shop edit networkpolicy allow-8080/);
  });

  it('leaves alone what still admits the agent port or never admitted the app port', () => {
    const fine: NetworkPolicyLike[] = [
      // By name: the name moves with the traffic.
      policy('by-name', { podSelector: {}, ingress: [{ ports: [{ port: 'http' }] }] }),
      // A range holding both.
      policy('range', { podSelector: {}, ingress: [{ ports: [{ port: 8000, endPort: 50000 }] }] }),
      // A rule without ports admits every port.
      policy('all-ports', { podSelector: {}, ingress: [{}] }),
      // Other pods.
      policy('other-pods', {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ ports: [{ port: 8080 }] }],
      }),
      // Egress only: ingress is not limited by it.
      policy('egress', { podSelector: {}, policyTypes: ['Egress'] }),
      // Denies all ingress: the app port was never reachable either.
      policy('deny-all', { podSelector: {}, policyTypes: ['Ingress'] }),
      // Admits 8080 over UDP only.
      policy('udp', { podSelector: {}, ingress: [{ ports: [{ port: 8080, protocol: 'UDP' }] }] }),
      // Both ports listed.
      policy('both', { podSelector: {}, ingress: [{ ports: [{ port: 8080 }, { port: 47002 }] }] }),
    ];
    assert.deepEqual(blockingPolicies(fine, labels, [moved], named), []);
  });

  it('reads selectors as the API does, and names the app port the agent did not take over', () => {
    const selectors: NetworkPolicyLike[] = [
      policy('expr-in', {
        podSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['web'] }] },
        ingress: [{ ports: [{ port: 8080 }] }],
      }),
      policy('expr-notin', {
        podSelector: { matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['web'] }] },
        ingress: [{ ports: [{ port: 8080 }] }],
      }),
      policy('expr-exists', {
        podSelector: { matchExpressions: [{ key: 'app', operator: 'Exists' }] },
        ingress: [{ ports: [{ port: 8080 }] }],
      }),
    ];
    assert.deepEqual(
      blockingPolicies(selectors, labels, [moved], named).map((b) => b.policy),
      ['expr-in', 'expr-exists'],
    );
    // The app keeps its own name `web` while the agent's port is `dbx-8080`: a policy naming `web` breaks.
    const unnamedMove = { ...moved, agentPortName: 'dbx-8080' };
    const byAppName = policy('by-app-name', { podSelector: {}, ingress: [{ ports: [{ port: 'web' }] }] });
    assert.deepEqual(
      blockingPolicies([byAppName], labels, [unnamedMove], new Map([[8080, 'web']])).map((b) => b.policy),
      ['by-app-name'],
    );
  });
});
