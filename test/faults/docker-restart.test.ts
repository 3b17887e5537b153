/**
 * The Docker engine restarts under a running session (an upgrade, Docker Desktop's restart, a
 * laptop reboot): `devbox status` tells the truth about the session — whether its containers run
 * and whether the cluster's callers reach it — in-cluster callers are served by the pod's app
 * meanwhile, and `devbox down` still restores the namespace exactly and leaves no container.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker } from '../support/cluster.js';
import { clusterSnapshot } from '../support/devbox.js';
import {
  assertClusterWhole,
  type StoppedDaemon,
  startDaemon,
  stopDaemon,
  until,
  waitClusterWhole,
} from './cluster-health.js';
import { describeAnswers, type FaultWorld, faultWorld } from './world.js';

async function containerState(name: string): Promise<string> {
  const inspect = await docker(['inspect', '-f', '{{.State.Status}}', name]);
  return inspect.code === 0 ? inspect.stdout.trim() : 'absent';
}

describe('fault: the Docker engine restarts', { timeout: 480_000 }, () => {
  let world: FaultWorld;
  let containers: { service: string; sidecar: string };
  let stopped: StoppedDaemon | undefined;
  let disturbedAt = 0;

  before(async () => {
    await assertClusterWhole('before the Docker restart test');
    world = await faultWorld('fault-docker');
    containers = await world.up();
  });

  after(async () => {
    if (stopped) startDaemon(stopped);
    if (disturbedAt) await waitClusterWhole('after the Docker restart test', disturbedAt, 120_000);
    await world?.remove();
    await assertClusterWhole('after the Docker restart test');
  });

  it('devbox status tells the truth after the restart, and callers are served meanwhile', async (t) => {
    await world.firstAnswer('local', Date.now(), 60_000);
    disturbedAt = Date.now();
    const daemon = await stopDaemon('dockerd');
    stopped = daemon;
    startDaemon(daemon);
    stopped = undefined;
    const backAt = await until(
      'the Docker engine answers again',
      async () => (await docker(['info', '--format', '{{.ServerVersion}}'], 5_000)).code === 0,
      120_000,
    );
    const states = {
      sidecar: await containerState(containers.sidecar),
      service: await containerState(containers.service),
    };
    const entry = await world.status();
    assert.ok(entry, `devbox status lists no session of ${world.ns}`);
    // Who the cluster's callers reach now: the local container only if the session truly runs.
    const running = states.sidecar === 'running' && states.service === 'running';
    const answered = await world.firstAnswer(running ? 'local' : 'pod', backAt, 30_000);
    const seen = await world.probes(disturbedAt);
    t.diagnostic(
      `dockerd stopped in ${daemon.stopMs} ms, answering again ${backAt - disturbedAt} ms after the stop; ` +
        `containers: sidecar ${states.sidecar}, service ${states.service}; devbox status: state ${entry.state}, ` +
        `ready ${entry.ready}, "${entry.reason}"; callers: ${describeAnswers(seen)} (the ${answered.where} ` +
        `answered ${answered.done - backAt} ms after the engine's return)`,
    );
    assert.equal(
      entry.ready,
      running,
      `status says ready=${entry.ready} while the containers are ${JSON.stringify(states)}`,
    );
    const expectedState = running
      ? 'running'
      : states.sidecar === 'running' || states.service === 'running'
        ? 'degraded'
        : 'stopped';
    assert.equal(
      entry.state,
      expectedState,
      `status says ${entry.state} while the containers are ${JSON.stringify(states)}`,
    );
    if (!running) assert.match(entry.reason, /not running/, 'the reason names what is not running');
  });

  it('devbox down restores the namespace exactly and leaves no container', async () => {
    const down = await world.devbox(['down', world.app]);
    assert.equal(down.code, 0, `devbox down exited ${down.code}:\n${down.stderr}`);
    assert.deepEqual(await clusterSnapshot(world.ns), world.before);
    assert.equal(await containerState(containers.sidecar), 'absent');
    assert.equal(await containerState(containers.service), 'absent');
  });
});
