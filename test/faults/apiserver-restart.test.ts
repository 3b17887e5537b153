/**
 * The API server is stopped and started again (as an upgrade or a crash does): every tunnel
 * (a port-forward through it) breaks and the sidecar's watches fail. Within 5 s of the API
 * returning, the session serves again — in-cluster callers reach the local container and the
 * local container reaches the cluster — with no user action.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker } from '../support/cluster.js';
import { clusterSnapshot } from '../support/devbox.js';
import {
  apiReady,
  assertClusterWhole,
  type StoppedDaemon,
  startDaemon,
  stopDaemon,
  until,
  waitClusterWhole,
} from './cluster-health.js';
import { describeAnswers, type FaultWorld, faultWorld, OUTBOUND_ECHO } from './world.js';

const RECOVERY_LIMIT_MS = 5_000;
/**
 * As long as a restart takes, and long enough for reconnect attempts to back off; short enough
 * that the kubelet's Lease (40 s) survives it and the node stays Ready.
 */
const API_AWAY_MS = 12_000;

describe('fault: the API server restarts', { timeout: 480_000 }, () => {
  let world: FaultWorld;
  let service: string;
  let stopped: StoppedDaemon | undefined;
  let disturbedAt = 0;

  before(async () => {
    await assertClusterWhole('before the API server restart test');
    world = await faultWorld('fault-apiserver');
    ({ service } = await world.up());
  });

  after(async () => {
    if (stopped) startDaemon(stopped);
    // The kubelet could not post the node's status meanwhile: the node may be NotReady for a while.
    if (disturbedAt) await waitClusterWhole('after the API server restart test', disturbedAt, 180_000);
    await world?.remove();
    await assertClusterWhole('after the API server restart test');
  });

  it(`serves again within ${RECOVERY_LIMIT_MS} ms of the API server's return`, async (t) => {
    await world.firstAnswer('local', Date.now(), 60_000);
    const stoppedAt = Date.now();
    disturbedAt = Date.now();
    const daemon = await stopDaemon('kube-apiserver', { signal: 'SIGKILL' });
    stopped = daemon;
    await new Promise((r) => setTimeout(r, API_AWAY_MS - (Date.now() - stoppedAt)));
    startDaemon(daemon);
    stopped = undefined;
    const backAt = await until('the API server is ready again', apiReady, 120_000);
    const outboundAt = until(
      'the local container reaches the echo Service',
      async () => (await docker(['exec', service, 'node', '-e', OUTBOUND_ECHO], 10_000)).code === 0,
      60_000,
    );
    const inbound = await world.firstAnswer('local', backAt, 60_000);
    const outboundMs = (await outboundAt) - backAt;
    const inboundMs = inbound.done - backAt;
    const away = await world.probes(stoppedAt);
    t.diagnostic(
      `API server stopped in ${daemon.stopMs} ms, away ${backAt - stoppedAt} ms; in-cluster callers reached the ` +
        `local container ${inboundMs} ms after it was ready, the local container reached the cluster after ` +
        `${outboundMs} ms (limit ${RECOVERY_LIMIT_MS} ms). While away and after: ` +
        describeAnswers(away.filter((r) => r.t < inbound.t)),
    );
    assert.ok(
      inboundMs <= RECOVERY_LIMIT_MS,
      `callers reached the local container ${inboundMs} ms after the API's return`,
    );
    assert.ok(
      outboundMs <= RECOVERY_LIMIT_MS,
      `the local container reached the cluster ${outboundMs} ms after the API's return`,
    );
  });

  it('devbox down restores the namespace exactly', async () => {
    const down = await world.devbox(['down', world.app]);
    assert.equal(down.code, 0, `devbox down exited ${down.code}:\n${down.stderr}`);
    assert.deepEqual(await clusterSnapshot(world.ns), world.before);
  });
});
