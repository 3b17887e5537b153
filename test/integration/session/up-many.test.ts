/**
 * Several workloads as one session, from `devbox.yaml` or named on the command line: all come
 * up, calls between their local containers stay on Docker, `down` with no name ends them all, one that fails undoes the others, one Ctrl-C ends all,
 * and a bad file changes nothing.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SessionStatus } from '../../../src/session/status.js';
import type { UpResult } from '../../../src/session/up.js';
import { docker, localContainers, type testNamespace } from '../../support/cluster.js';
import {
  clusterSnapshot,
  devbox as devboxAs,
  finished,
  type RunAs,
  startDevbox as startDevboxAs,
  waitForOutput,
} from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';
import { shopNamespace } from '../../support/shop.js';
import { storefrontHears } from '../../support/storefront.js';

/** Five calls to inventory's Service, each on a new connection, printing who answered. */
const FIVE_NEW_CONNECTIONS = `
const http = require('node:http');
const get = () => new Promise((resolve, reject) =>
  http.get('http://inventory/items', { agent: false }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => resolve(JSON.parse(body).where));
  }).on('error', reject));
(async () => { for (let i = 0; i < 5; i++) console.log(await get()); })();`;

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
  const statusOf = async (namespace: string) => {
    const all = JSON.parse((await devbox(['status', '-o', 'json'])).stdout) as SessionStatus[];
    const mine = all.filter((s) => s.namespace === namespace);
    return {
      api: mine.find((s) => s.workload === 'deployment/api'),
      inventory: mine.find((s) => s.workload === 'deployment/inventory'),
    };
  };
  const assertPristine = async () => {
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
    assert.deepEqual(await localContainers(ns.name), []);
  };

  before(async () => {
    ns = await shopNamespace('many');
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
      // The local api's calls to inventory's Service reach the local inventory straight on
      // Docker: inventory's agent in the cluster sees none of them.
      const before = await statusOf(ns.name);
      assert.deepEqual(
        before.api?.localRoutes?.map((r) => [r.service, r.container]),
        [[`${ns.name}/inventory`, `devbox-inventory.${ns.name}`]],
        JSON.stringify(before.api),
      );
      const answers = await docker(['exec', `devbox-api.${ns.name}`, 'node', '-e', FIVE_NEW_CONNECTIONS]);
      assert.deepEqual(answers.stdout.trim().split('\n'), Array(5).fill('local container'), answers.stderr);
      const later = await statusOf(ns.name);
      assert.equal(
        later.inventory?.podsRouted?.toSession,
        before.inventory?.podsRouted?.toSession,
        "inventory's agent saw no connection",
      );
      const direct = (s: typeof later) => s.api?.localRoutes?.[0]?.connections ?? 0;
      assert.ok(direct(later) - direct(before) >= 5, JSON.stringify(later.api?.localRoutes));
      const text = await devbox(['status']);
      assert.match(
        text.stdout,
        new RegExp(`service ${ns.name}/inventory:80 → devbox-inventory\\.${ns.name} directly on Docker`),
      );
      assert.match(text.stdout, /every other Service → through the cluster/);
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
