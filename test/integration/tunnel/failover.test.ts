/**
 * Fail safe: when the laptop side stops answering (the sidecar container is
 * frozen, as by a laptop's sleep) or dies (killed), the agent sends the
 * Service's traffic back to the app in the pod within 2 s; a thawed sidecar
 * gets the traffic back; `devbox down` still restores everything afterwards.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AGENT_PING_INTERVAL_MS, AGENT_SUSPECT_AFTER_MS } from '../../../src/tunnel/protocol.js';
import { docker, kubectl } from '../../support/cluster.js';
import { startWorld, type World } from './fixture.js';
import { FAILOVER_PROBE, WHERE_PROBE } from './probes.js';

const FAILOVER_LIMIT_MS = 2_000;
/**
 * A frozen sidecar sends no FIN: the agent notices only the silence, after AGENT_SUSPECT_AFTER_MS
 * counted from the tick (one ping interval apart) that last saw bytes arrive; 500 ms for the probe.
 */
const FREEZE_LIMIT_MS = AGENT_SUSPECT_AFTER_MS + AGENT_PING_INTERVAL_MS + 500;
/** How much longer than a switch's limit the probe keeps asking. */
const PROBE_MARGIN_MS = 8_000;

interface Probe {
  t: number;
  done: number;
  where?: string;
  error?: string;
}

async function dockerOk(args: string[]): Promise<void> {
  const result = await docker(args);
  assert.equal(result.code, 0, `docker ${args.join(' ')}: ${result.stderr}`);
}

describe('failover to the in-pod app', { timeout: 300_000 }, () => {
  let world: World;

  before(async () => {
    world = await startWorld('tnl-failover', 'tnl-failover');
  });

  after(async () => {
    // A test that failed mid-way may leave the sidecar frozen; Docker removes no paused container.
    if (world) await docker(['unpause', world.sidecar]);
    await world?.teardown();
  });

  /**
   * Asks the Service every 50 ms from the client pod, runs `act` once `from` answers, and measures
   * how long after `act` began `to` answers; then checks that nothing but `to` answers for a second.
   */
  async function measureSwitch(
    act: () => Promise<void>,
    from: string,
    to: string,
    limitMs: number,
  ): Promise<{ gapMs: number; actMs: number; sinceLastMs: number; failed: string[] }> {
    const probe = world.streamInPod(FAILOVER_PROBE, [
      `http://${world.app}/`,
      String(limitMs + PROBE_MARGIN_MS),
    ]);
    try {
      await probe.waitFor((l) => l.includes(`"where":"${from}"`), 10_000);
      const actedAt = Date.now();
      await act();
      const actReturnedAt = Date.now();
      await probe.waitFor(
        (l) => l.includes(`"where":"${to}"`) && (JSON.parse(l) as Probe).t >= actReturnedAt,
        limitMs + 5_000,
      );
      // More answers, so a flap back or errors after the switch would show.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      // The pod and the host share one clock (the local cluster runs on this machine).
      const results = probe.lines.filter(Boolean).map((l) => JSON.parse(l) as Probe);
      const first = results.find((r) => r.where === to && r.t >= actedAt)!;
      const lastFrom = results.filter((r) => r.where === from && r.t < first.t).at(-1)!;
      const failed = results
        .filter((r) => r.error && r.t >= lastFrom.t && r.t <= first.t)
        .map((r) => r.error!);
      const afterSwitch = results.filter((r) => r.t > first.t);
      assert.ok(afterSwitch.length >= 10, `only ${afterSwitch.length} requests after the switch`);
      assert.deepEqual(
        afterSwitch.filter((r) => r.where !== to),
        [],
        `every request after the switch is answered by the ${to}`,
      );
      return {
        gapMs: first.done - actedAt,
        actMs: actReturnedAt - actedAt,
        sinceLastMs: first.done - lastFrom.done,
        failed,
      };
    } finally {
      probe.process.kill();
    }
  }

  const describeSwitch = (what: string, r: Awaited<ReturnType<typeof measureSwitch>>) =>
    `${what}: answered ${r.gapMs} ms after the action began (the docker command took ${r.actMs} ms), ` +
    `${r.sinceLastMs} ms after the last answer before it; ${r.failed.length} request(s) failed in between` +
    (r.failed.length ? ` (${[...new Set(r.failed)].join(', ')})` : '');

  it(`answers from the pod within ${FREEZE_LIMIT_MS} ms after the sidecar freezes (no FIN, like a sleeping laptop)`, async (t) => {
    const result = await measureSwitch(
      () => dockerOk(['pause', world.sidecar]),
      'local',
      'pod',
      FREEZE_LIMIT_MS,
    );
    t.diagnostic(describeSwitch('pod after docker pause', result));
    assert.ok(result.gapMs <= FREEZE_LIMIT_MS, `the pod answered ${result.gapMs} ms after the freeze`);
  });

  it('sends the traffic to the local container again once the sidecar thaws', async (t) => {
    const result = await measureSwitch(() => dockerOk(['unpause', world.sidecar]), 'pod', 'local', 30_000);
    t.diagnostic(describeSwitch('local after docker unpause', result));
  });

  it('answers from the pod within 2 s after the sidecar is killed', async (t) => {
    const result = await measureSwitch(
      () => dockerOk(['kill', world.sidecar]),
      'local',
      'pod',
      FAILOVER_LIMIT_MS,
    );
    t.diagnostic(describeSwitch('pod after docker kill', result));
    assert.ok(result.gapMs <= FAILOVER_LIMIT_MS, `the pod answered ${result.gapMs} ms after the kill`);
  });

  it('keeps answering from the pod, and devbox down then restores the workload and its Service', async () => {
    const answers = JSON.parse(await world.inPod(WHERE_PROBE, [`http://${world.app}/`, '5'])).answers;
    assert.deepEqual(answers, Array(5).fill('pod'));
    await world.down();
    const get = (kind: string, path: string) =>
      kubectl(['-n', world.ns, 'get', kind, world.app, '-o', `jsonpath={${path}}`]);
    assert.equal(await get('deploy', '.spec.template.spec.containers[*].name'), 'app');
    assert.equal(await get('svc', '.spec.ports[0].targetPort'), 'http');
    const left = await docker(['ps', '-a', '--filter', `name=^/${world.service}`, '--format', '{{.Names}}']);
    assert.equal(left.stdout.trim(), '', 'no local container is left');
  });
});
