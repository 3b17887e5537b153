/**
 * Several workloads as one session, from `devbox.yaml` or named on the command line: all come
 * up, `down` with no name ends them all, one that fails undoes the others, one Ctrl-C ends all,
 * and a bad file changes nothing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deployShop } from '../../../src/demo/shop.js';
import { createKubeClient } from '../../../src/kube/index.js';
import type { UpResult } from '../../../src/session/up.js';
import { clusterImages, docker, kubeconfig, testNamespace } from '../../support/cluster.js';
import {
  clusterSnapshot,
  devbox as devboxAs,
  finished,
  type RunAs,
  startDevbox as startDevboxAs,
  waitForOutput,
} from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';
import { storefrontHears } from '../../support/storefront.js';

const images = clusterImages();

/** An env variable of a local container as its process sees it. */
async function envOf(container: string, name: string): Promise<string> {
  const out = await docker(['exec', container, 'node', '-p', `process.env.${name}`]);
  return out.stdout.trim();
}

describe('several workloads in one up', { timeout: 900_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let pristine: Record<string, unknown>;
  let project = '';
  const user: RunAs = {};
  const devbox = (args: string[]) => devboxAs(args, user);
  const startDevbox = (args: string[]) => startDevboxAs(args, user);
  const writeProject = (text: string) => writeFile(join(project, 'devbox.yaml'), text);
  const localContainers = async () =>
    (
      await docker(['ps', '-a', '--filter', `label=devbox.namespace=${ns.name}`, '--format', '{{.Names}}'])
    ).stdout
      .split('\n')
      .filter(Boolean)
      .sort();
  const assertPristine = async () => {
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
    assert.deepEqual(await localContainers(), []);
  };

  before(async () => {
    ns = await testNamespace('many');
    const client = createKubeClient({ kubeconfig, namespace: ns.name });
    try {
      await deployShop(client, ns.name, images.runtime);
    } finally {
      client.close();
    }
    user.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    project = await mkdtemp(join(tmpdir(), 'devbox-many-'));
    user.cwd = project;
    pristine = await clusterSnapshot(ns.name);
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
    await rm(project, { recursive: true, force: true });
  });

  it('refuses a devbox.yaml with an unknown key, naming file, line and key, and changes nothing', async () => {
    await writeProject(`namespace: ${ns.name}\nworkloads:\n  api:\n    imagee: api:dev\n`);
    const result = await devbox(['up', '--detach']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /devbox\.yaml:4:5: workloads\.api\.imagee: unknown key/);
    await assertPristine();
  });

  it('brings up every workload of devbox.yaml, and down with no name ends them all', async () => {
    await writeProject(
      `# yaml-language-server: $schema=../schema/devbox.schema.json\nnamespace: ${ns.name}\nworkloads:\n  api:\n    env: {GREETING_FROM: file}\n  inventory:\n`,
    );
    let down: Awaited<ReturnType<typeof devbox>>;
    try {
      const up = await devbox(['up', '--detach', '-o', 'json']);
      assert.equal(up.code, 0, up.stderr);
      const results = JSON.parse(up.stdout) as UpResult[];
      assert.deepEqual(
        results.map((r) => r.workload),
        ['deployment/api', 'deployment/inventory'],
      );
      // Progress names the workload of each step.
      assert.match(up.stderr, /✓ api: Finding api in /);
      assert.match(up.stderr, /✓ inventory: Finding inventory in /);
      await storefrontHears(ns.name, 'local container', 60_000);
      assert.equal(await envOf(`devbox-api.${ns.name}`, 'GREETING_FROM'), 'file');
      // The local api's call to inventory is answered by the local inventory.
      const answer = await docker([
        'exec',
        `devbox-api.${ns.name}`,
        'node',
        '-e',
        "fetch('http://inventory/items').then((r) => r.json()).then((b) => console.log(b.where))",
      ]);
      assert.equal(answer.stdout.trim(), 'local container');
    } finally {
      // Also after a failed assertion: the tests below must not meet these sessions.
      down = await devbox(['down', '-o', 'json']);
    }
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(
      (JSON.parse(down.stdout) as { workload: string }[]).map((d) => d.workload),
      ['deployment/api', 'deployment/inventory'],
    );
    await assertPristine();
  });

  it('undoes the sessions it started when a later workload fails: nothing stays half up', async () => {
    await writeProject(
      `namespace: ${ns.name}\nworkloads:\n  api: {}\n  gone:\n    workload: deploy/not-there\n`,
    );
    const result = await devbox(['up', '--detach']);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /Ending the sessions this command started \(deployment\/api\)/);
    await assertPristine();
  });

  it('without a file, brings up the named workloads with the flags applied to each; one Ctrl-C ends all', async () => {
    await rm(join(project, 'devbox.yaml'));
    const child = startDevbox(['up', 'api', 'inventory', '-n', ns.name, '-e', 'FLAG_FOR_EACH=yes']);
    await waitForOutput(child, /inventory runs locally in devbox-inventory\./, 180_000);
    for (const name of ['api', 'inventory']) {
      assert.equal(await envOf(`devbox-${name}.${ns.name}`, 'FLAG_FOR_EACH'), 'yes', name);
    }
    child.kill('SIGINT');
    const result = await finished(child, 180_000);
    assert.equal(result.code, 130, result.stderr);
    await assertPristine();
  });
});
