/**
 * A NetworkPolicy that admits the app's port by number but not the agent's would drop every
 * intercepted connection once the pods roll. `up` finds it first and refuses, naming the policy
 * and the port to add, and changes nothing. (The local cluster may not enforce policies: what is
 * tested is the detection.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clusterImages, kubectl, testNamespace } from '../../support/cluster.js';
import { clusterSnapshot, devbox } from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';

function manifests(ns: string): string {
  const server = JSON.stringify([
    'node',
    '-e',
    "require('node:http').createServer((q, s) => s.end('pod')).listen(8080)",
  ]);
  return `
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: api } }
  template:
    metadata: { labels: { app: api } }
    spec:
      containers:
        - name: app
          image: ${clusterImages().runtime}
          imagePullPolicy: Never
          command: ${server}
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: ${ns} }
spec:
  selector: { app: api }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: api-ingress, namespace: ${ns} }
spec:
  podSelector: { matchLabels: { app: api } }
  policyTypes: [Ingress]
  ingress:
    - ports: [{ port: 8080, protocol: TCP }]
`;
}

describe('NetworkPolicy on the moved port', { timeout: 300_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let kubeconfig: string;

  before(async () => {
    ns = await testNamespace('netpol');
    await kubectl(['apply', '-f', '-'], { input: manifests(ns.name) });
    await kubectl(['-n', ns.name, 'rollout', 'status', 'deploy/api', '--timeout=180s'], {
      timeoutMs: 200_000,
    });
    kubeconfig = (await developerIn(ns.name)).kubeconfig;
  });

  after(async () => {
    await ns?.remove();
  });

  it('up refuses, naming the policy and the port to add, and changes nothing', async () => {
    const before = await clusterSnapshot(ns.name);
    const result = await devbox(['up', 'api', '-n', ns.name, '--detach', '-o', 'json'], { kubeconfig });
    assert.notEqual(result.code, 0, 'up must refuse');
    const error = JSON.parse(result.stdout) as { error: { code: string; message: string; hint?: string } };
    assert.equal(error.error.code, 'BAD_INPUT', result.stdout);
    assert.match(error.error.message, /networkpolicy\/api-ingress admits the app's port 8080 by number/);
    assert.match(error.error.message, /add \{port: 470\d\d, protocol: TCP\}/);
    assert.deepEqual(await clusterSnapshot(ns.name), before, 'nothing in the namespace changed');
  });

  it('a policy that admits the port by name lets up go ahead', async () => {
    await kubectl([
      '-n',
      ns.name,
      'patch',
      'networkpolicy',
      'api-ingress',
      '--type=json',
      '-p',
      JSON.stringify([{ op: 'replace', path: '/spec/ingress/0/ports/0/port', value: 'http' }]),
    ]);
    const up = await devbox(['up', 'api', '-n', ns.name, '--detach', '-o', 'json'], { kubeconfig });
    try {
      assert.equal(up.code, 0, `${up.stderr}${up.stdout}`);
    } finally {
      const down = await devbox(['down', 'api', '-n', ns.name], { kubeconfig });
      assert.equal(down.code, 0, down.stderr);
    }
  });
});
