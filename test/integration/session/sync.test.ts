/**
 * The dev loop on the sample shop: with `--sync`, an edit of the api's source
 * is answered to the in-cluster storefront by the new code, after a restart of
 * the local container or a rebuild of its image; during a rebuild the
 * storefront sees no error (the pod's app answers meanwhile).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { shopManifests } from '../../../src/demo/shop.js';
import { clusterImages, docker, kubectl, type testNamespace } from '../../support/cluster.js';
import {
  devbox as devboxAs,
  finished,
  type RunAs,
  startDevbox as startDevboxAs,
  waitForOutput,
} from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';
import { shopNamespace } from '../../support/shop.js';
import { storefrontHears as hears, storefrontLines } from '../../support/storefront.js';

/** sync's edits take a moment to show: a line of the last 3 s counts. */
const storefrontHears = (ns: string, where: string, timeoutMs = 60_000) => hears(ns, where, timeoutMs, 3);

const images = clusterImages();

async function sidecarId(ns: string): Promise<string> {
  const out = await docker([
    'ps',
    '-q',
    '--filter',
    `label=devbox.namespace=${ns}`,
    '--filter',
    'label=devbox.role=sidecar',
  ]);
  return out.stdout.trim();
}

describe('the dev loop on the sample shop', { timeout: 900_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let project = '';
  let source = '';
  const user: RunAs = {};

  before(async () => {
    ns = await shopNamespace('loop');
    user.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    const code = (await shopManifests(images.runtime)).find(
      (m) => m.metadata.name === 'shop-code',
    ) as unknown as {
      data: Record<string, string>;
    };
    source = code.data['server.js'] ?? '';
    assert.match(source, /'local container'/);
    project = await mkdtemp(join(tmpdir(), 'devbox-loop-'));
    user.cwd = project;
    await writeFile(join(project, 'Dockerfile'), `FROM ${images.runtime}\nCOPY server.js /app/server.js\n`);
    await writeFile(join(project, '.dockerignore'), 'Dockerfile\n');
  });

  after(async () => {
    await devboxAs(['clean', '-n', ns.name, '--force'], user);
    await ns?.remove();
    await rm(project, { recursive: true, force: true });
  });

  const version = (v: string) =>
    writeFile(join(project, 'server.js'), source.replace("'local container'", `'${v}'`));

  it('refuses a sync path outside the project or missing before changing anything', async () => {
    const result = await devboxAs(
      ['up', 'api', '-n', ns.name, '--sync', '../elsewhere:/app', '--sync', 'nope.js:/app/x.js'],
      user,
    );
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /\.\.\/elsewhere:\/app: .*(outside the project|does not exist)/);
    assert.match(result.stderr, /nope\.js:\/app\/x\.js: .*does not exist/);
    const pods = await kubectl([
      '-n',
      ns.name,
      'get',
      'deploy/api',
      '-o',
      'jsonpath={.spec.template.spec.containers[*].name}',
    ]);
    assert.equal(pods.trim(), 'api', 'no agent was added');
  });

  it('with --on-change restart, the storefront is answered by the edited code', async () => {
    await version('local v1');
    const child = startDevboxAs(
      ['up', 'api', '-n', ns.name, '--sync', 'server.js:/app/server.js', '--on-change', 'restart'],
      user,
    );
    try {
      await waitForOutput(child, /sync: first copy/);
      await storefrontHears(ns.name, 'local v1');
      await version('local v2');
      await storefrontHears(ns.name, 'local v2', 30_000);
      assert.match(child.output.stderr, /sync: 1 written; restarted/);
    } finally {
      child.kill('SIGINT');
      const ended = await finished(child, 120_000);
      assert.equal(ended.code, 130, ended.stderr);
    }
  });

  it('with --on-change rebuild, only the service container is replaced: the sidecar stays', async () => {
    await version('local v1');
    const child = startDevboxAs(
      [
        'up',
        'api',
        '-n',
        ns.name,
        '--build',
        '.',
        '--sync',
        'server.js:/app/server.js',
        '--on-change',
        'rebuild',
      ],
      user,
    );
    try {
      await waitForOutput(child, /sync: first copy/);
      await storefrontHears(ns.name, 'local v1');
      const sidecarBefore = await sidecarId(ns.name);
      const since = new Date().toISOString();
      await version('local v2');
      await waitForOutput(child, /sync: 1 written; rebuilt/, 180_000);
      await storefrontHears(ns.name, 'local v2', 60_000);
      const during = await storefrontLines(ns.name, since);
      assert.ok(during.length > 0, 'the storefront kept asking');
      // While the container was swapped the pod's app answered: no caller saw an error.
      assert.deepEqual(
        during.filter((l) => l.error !== undefined),
        [],
        JSON.stringify(during),
      );
      assert.equal(await sidecarId(ns.name), sidecarBefore, 'the sidecar stays');
    } finally {
      child.kill('SIGINT');
      const ended = await finished(child, 120_000);
      assert.equal(ended.code, 130, ended.stderr);
    }
  });
});
