/**
 * The pod holding the agent is deleted (eviction, node drain, `kubectl delete pod`): its
 * Deployment makes a replacement with the agent, and the session moves to it by itself — the
 * sidecar tunnels to the new pod and in-cluster callers reach the local container again.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kubectl } from '../support/cluster.js';
import { clusterSnapshot } from '../support/devbox.js';
import { assertClusterWhole, until } from './cluster-health.js';
import { describeAnswers, type FaultWorld, faultWorld } from './world.js';

/** From the replacement pod's Ready to callers reaching the local container through it. */
const MOVE_LIMIT_MS = 5_000;

interface PodView {
  metadata: { name: string; deletionTimestamp?: string };
  spec: { containers: { name: string }[] };
  status: { conditions?: { type: string; status: string }[] };
}

describe('fault: the agent pod is deleted', { timeout: 420_000 }, () => {
  let world: FaultWorld;

  before(async () => {
    await assertClusterWhole('before the agent-pod test');
    world = await faultWorld('fault-agentpod');
    await world.up();
  });

  after(async () => {
    await world?.remove();
    await assertClusterWhole('after the agent-pod test');
  });

  const pods = async () =>
    (
      JSON.parse(await kubectl(['-n', world.ns, 'get', 'pods', '-l', `app=${world.app}`, '-o', 'json'])) as {
        items: PodView[];
      }
    ).items;
  const ready = (p: PodView) => p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

  it(`moves to the replacement pod by itself within ${MOVE_LIMIT_MS} ms of it being Ready`, async (t) => {
    await world.firstAnswer('local', Date.now(), 60_000);
    // The pods up replaced may still be terminating: the agent's pod is the one that lives on.
    const agentPods = (await pods()).filter(
      (p) => !p.metadata.deletionTimestamp && p.spec.containers.some((c) => c.name === 'devbox-agent'),
    );
    const [old, ...others] = agentPods;
    assert.ok(
      old && others.length === 0,
      `one agent pod of ${world.app} expected, found ${agentPods.length}`,
    );
    const deletedAt = Date.now();
    await kubectl(['-n', world.ns, 'delete', 'pod', old.metadata.name, '--wait=false']);
    let replacement = '';
    const readyAt = await until(
      'a replacement pod is Ready',
      async () => {
        const fresh = (await pods()).find(
          (p) => p.metadata.name !== old.metadata.name && !p.metadata.deletionTimestamp && ready(p),
        );
        replacement = fresh?.metadata.name ?? '';
        return Boolean(fresh);
      },
      180_000,
    );
    const first = await world.firstAnswer('local', readyAt, 60_000);
    const movedMs = first.done - readyAt;
    await until(
      'devbox status shows the tunnel to the replacement up',
      async () =>
        Boolean((await world.status())?.tunnels.some((x) => x.pod === replacement && x.state === 'up')),
      30_000,
    );
    const seen = await world.probes(deletedAt);
    t.diagnostic(
      `replacement ${replacement} Ready ${readyAt - deletedAt} ms after the delete; callers reached the local ` +
        `container ${movedMs} ms after that (limit ${MOVE_LIMIT_MS} ms). Meanwhile: ` +
        describeAnswers(seen.filter((r) => r.t < first.t)),
    );
    assert.ok(
      movedMs <= MOVE_LIMIT_MS,
      `callers reached the local container ${movedMs} ms after the replacement was Ready`,
    );
  });

  it('devbox down restores the namespace exactly', async () => {
    const down = await world.devbox(['down', world.app]);
    assert.equal(down.code, 0, `devbox down exited ${down.code}:\n${down.stderr}`);
    assert.deepEqual(await clusterSnapshot(world.ns), world.before);
  });
});
