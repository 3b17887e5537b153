/**
 * A StatefulSet with the OnDelete update strategy, run as a developer holding only the
 * developer Role: `up` replaces only its own pods (another pod matching its selector stays),
 * `down` takes the agent out of them again, and the namespace ends as it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { clusterImages, kubectl, nodePodManifest, testNamespace } from '../../support/cluster.js';
import { clusterSnapshot, devbox, type RunAs } from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';

const server = "require('http').createServer((q, s) => s.end('db')).listen(8080)";

function statefulSet(namespace: string): string {
  return JSON.stringify({
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'db', namespace },
    spec: {
      serviceName: 'db',
      replicas: 2,
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'OnDelete' },
      selector: { matchLabels: { app: 'db' } },
      template: {
        metadata: { labels: { app: 'db' } },
        spec: {
          terminationGracePeriodSeconds: 0,
          containers: [
            {
              name: 'db',
              image: clusterImages().runtime,
              imagePullPolicy: 'Never',
              command: ['node', '-e', server],
              ports: [{ name: 'http', containerPort: 8080 }],
              readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  });
}

type Pod = { metadata: { name: string; uid: string }; spec: { containers: { name: string }[] } };

async function pods(namespace: string): Promise<Map<string, { uid: string; agent: boolean }>> {
  const list = JSON.parse(await kubectl(['-n', namespace, 'get', 'pods', '-l', 'app=db', '-o', 'json'])) as {
    items: Pod[];
  };
  return new Map(
    list.items.map((p) => [
      p.metadata.name,
      { uid: p.metadata.uid, agent: p.spec.containers.some((c) => c.name === 'devbox-agent') },
    ]),
  );
}

describe('devbox up and down on a StatefulSet that uses OnDelete', { timeout: 600_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  const user: RunAs = {};
  let pristine: Record<string, unknown>;

  before(async () => {
    ns = await testNamespace('ondelete');
    user.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    await kubectl(['apply', '-f', '-'], { input: statefulSet(ns.name) });
    await kubectl(['-n', ns.name, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'db' },
        spec: { selector: { app: 'db' }, ports: [{ port: 80, targetPort: 'http' }] },
      }),
    });
    // Not the StatefulSet's, though its labels match the selector.
    await kubectl(['apply', '-f', '-'], {
      input: nodePodManifest({
        name: 'stray',
        namespace: ns.name,
        app: 'db',
        script: server,
        readyPort: 8080,
      }),
    });
    // `rollout status` only follows RollingUpdate.
    await kubectl(
      ['-n', ns.name, 'wait', '--for=jsonpath={.status.readyReplicas}=2', 'sts/db', '--timeout=180s'],
      {
        timeoutMs: 200_000,
      },
    );
    await kubectl(['-n', ns.name, 'wait', '--for=condition=Ready', 'pod/stray', '--timeout=120s']);
    pristine = await clusterSnapshot(ns.name);
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force'], user);
    await ns?.remove();
  });

  it("up replaces only the StatefulSet's own pods; down takes the agent out of them again", async () => {
    const stray = (await pods(ns.name)).get('stray')!.uid;
    const up = await devbox(['up', 'sts/db', '-n', ns.name, '--detach'], { ...user, timeoutMs: 300_000 });
    assert.equal(up.code, 0, up.stderr);
    let now = await pods(ns.name);
    assert.equal(now.get('stray')?.uid, stray, 'the pod the StatefulSet does not own stays');
    assert.equal(now.get('db-0')?.agent, true);
    assert.equal(now.get('db-1')?.agent, true);

    const down = await devbox(['down', 'sts/db', '-n', ns.name], { ...user, timeoutMs: 300_000 });
    assert.equal(down.code, 0, down.stderr);
    now = await pods(ns.name);
    assert.equal(now.get('stray')?.uid, stray);
    assert.equal(now.get('db-0')?.agent, false, 'no agent left without its token');
    assert.equal(now.get('db-1')?.agent, false);
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
  });
});
