/**
 * The CLI dies without warning (SIGKILL: no undo runs) right after each step `devbox up` prints,
 * one run per step: `devbox clean` then restores the namespace byte for byte and leaves no local
 * container. The steps come from a complete `up` of the same workload, so a new step is covered
 * the day it is added.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { localContainers } from '../support/cluster.js';
import { clusterSnapshot, finished, startDevbox } from '../support/devbox.js';
import { assertClusterWhole } from './cluster-health.js';
import { type FaultWorld, faultWorld } from './world.js';

const STEP_DONE = /^✓ (.+) \(\d+\.\ds\)$/gm;

const doneSteps = (stderr: string) => [...stderr.matchAll(STEP_DONE)].map((m) => m[1]!);

describe('fault: the CLI is killed after each step of up', { timeout: 1_200_000 }, () => {
  let world: FaultWorld;
  let steps: string[] = [];

  before(async () => {
    await assertClusterWhole('before the CLI-kill test');
    world = await faultWorld('fault-cli');
    const up = await world.devbox(['up', world.app, '--detach']);
    assert.equal(up.code, 0, `a complete devbox up failed:\n${up.stderr}`);
    steps = doneSteps(up.stderr);
    const down = await world.devbox(['down', world.app]);
    assert.equal(down.code, 0, `devbox down failed:\n${down.stderr}`);
    assert.deepEqual(await clusterSnapshot(world.ns), world.before, 'down after a complete up restores');
  });

  after(async () => {
    await world?.remove();
    await assertClusterWhole('after the CLI-kill test');
  });

  it('devbox clean restores byte for byte after a kill at any step', async (t) => {
    assert.ok(steps.length >= 5, `up printed only ${steps.length} steps: ${steps.join(', ')}`);
    t.diagnostic(`up's steps: ${steps.join(' → ')}`);
    for (const [index, title] of steps.entries()) {
      await t.test(`killed after step ${index + 1}/${steps.length}: ${title}`, async (st) => {
        const child = startDevbox(['up', world.app, '--detach', '-n', world.ns], {
          kubeconfig: world.kubeconfig,
        });
        const run = finished(child, 300_000);
        await new Promise<void>((resolve) => {
          const check = () => {
            if (doneSteps(child.output.stderr).length > index) {
              child.kill('SIGKILL');
              resolve();
            }
          };
          child.stderr!.on('data', check);
          child.on('close', () => resolve());
        });
        const ended = await run;
        const reached = doneSteps(ended.stderr);
        assert.ok(
          reached.length > index,
          `up ended (${ended.code}) before step ${index + 1} (${title}):\n${ended.stderr}`,
        );
        st.diagnostic(
          ended.code === null ? `killed after "${reached.at(-1)}"` : `up had already exited ${ended.code}`,
        );
        const clean = await world.devbox(['clean', '--force']);
        assert.equal(clean.code, 0, `devbox clean exited ${clean.code}:\n${clean.stderr}`);
        assert.deepEqual(await clusterSnapshot(world.ns), world.before, `after a kill after "${title}"`);
        assert.deepEqual(await localContainers(world.ns), [], 'no local container is left');
      });
    }
  });
});
