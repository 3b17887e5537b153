/**
 * The sidecar container is killed (SIGKILL: no goodbye on the tunnel): in-cluster callers of the
 * intercepted Service are served by the pod's own app within 2 s, and stay so; `devbox down`
 * then restores the namespace exactly.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker } from '../support/cluster.js';
import { clusterSnapshot } from '../support/devbox.js';
import { assertClusterWhole } from './cluster-health.js';
import { describeAnswers, type FaultWorld, faultWorld } from './world.js';

const FAILOVER_LIMIT_MS = 2_000;

describe('fault: the sidecar container is killed', { timeout: 420_000 }, () => {
  let world: FaultWorld;
  let sidecar: string;

  before(async () => {
    await assertClusterWhole('before the sidecar-kill test');
    world = await faultWorld('fault-sidecar');
    ({ sidecar } = await world.up());
  });

  after(async () => {
    await world?.remove();
    await assertClusterWhole('after the sidecar-kill test');
  });

  it(`in-cluster callers are served by the pod's app within ${FAILOVER_LIMIT_MS} ms`, async (t) => {
    await world.firstAnswer('local', Date.now(), 60_000);
    const killedAt = Date.now();
    const kill = await docker(['kill', sidecar]);
    assert.equal(kill.code, 0, `docker kill ${sidecar}: ${kill.stderr}`);
    const first = await world.firstAnswer('pod', killedAt, 30_000);
    const gapMs = first.done - killedAt;
    // Five more seconds of answers: after the switch every caller is served.
    await new Promise((r) => setTimeout(r, 5_000));
    const results = await world.probes(killedAt);
    const between = results.filter((r) => r.t < first.t);
    const afterwards = results.filter((r) => r.t > first.t && r.done < Date.now() - 1_500);
    t.diagnostic(
      `pod's app answered ${gapMs} ms after docker kill (limit ${FAILOVER_LIMIT_MS} ms); ` +
        `before that: ${describeAnswers(between)}; afterwards: ${describeAnswers(afterwards)}`,
    );
    assert.ok(gapMs <= FAILOVER_LIMIT_MS, `the pod's app answered ${gapMs} ms after the kill`);
    assert.ok(afterwards.length >= 20, `only ${afterwards.length} requests after the switch`);
    assert.equal(
      describeAnswers(afterwards),
      `pod×${afterwards.length}`,
      'every later caller is served by the pod',
    );
  });

  it('devbox down restores the namespace exactly', async () => {
    const down = await world.devbox(['down', world.app]);
    assert.equal(down.code, 0, `devbox down exited ${down.code}:\n${down.stderr}`);
    assert.deepEqual(await clusterSnapshot(world.ns), world.before);
  });
});
