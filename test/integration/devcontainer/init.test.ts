/**
 * `devbox devcontainer init <workload>`, then the Dev Containers CLI alone (as
 * VS Code or Codespaces run it): the initializeCommand starts the session's
 * sidecar, the dev container joins it with the pod's env and volumes, a reopen
 * reuses the session, `devbox down` removes everything, and the next open
 * starts afresh. No devbox command is typed between init and down.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { docker, testNamespace } from '../../support/cluster.js';
import { clusterSnapshot, devbox as devboxAs, type RunAs } from '../../support/devbox.js';
import {
  cliPath,
  clusterHears,
  deployShopAs,
  devboxWith as devboxWithAs,
  devcontainer,
  devImage,
  execIn,
  helloFeature,
  project,
  sessionContainers,
  settled,
  suffix,
  upOutcome,
} from './helpers.js';

/** Every devbox command runs as a user holding only the developer Role (set in `before`). */
const user: RunAs = {};
const devbox = (args: string[]) => devboxAs(args, user);
const devboxWith = (args: string[], options: Parameters<typeof devboxWithAs>[1] = {}) =>
  devboxWithAs(args, { ...options, as: user });

const run = promisify(execFile);

describe('devbox devcontainer init, then an editor opens the folder', { timeout: 900_000 }, () => {
  const api = `dcinit-${suffix()}`;
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let proj: Awaited<ReturnType<typeof project>>;
  let pristine: Record<string, unknown>;
  let configFile: string;
  let dir: string;
  let containerId: string;

  before(async () => {
    ns = await testNamespace('dcinit');
    const image = await devImage();
    user.kubeconfig = (await deployShopAs(ns.name, api)).kubeconfig;
    pristine = await clusterSnapshot(ns.name);
    proj = await project({
      '.devcontainer/devcontainer.json': `{
  "image": "${image}",
  "features": { "./hello": { "greeting": "from the project's feature" } },
  "postCreateCommand": "cat /etc/shop/greeting > /tmp/post-create-saw-volume && echo $DB_PASSWORD > /tmp/post-create-saw-env"
}
`,
      '.devcontainer/hello/devcontainer-feature.json': helloFeature['devcontainer-feature.json'],
      '.devcontainer/hello/install.sh': helloFeature['install.sh'],
      'server.js':
        "require('node:http').createServer((q, s) => s.end(JSON.stringify({ where: 'editor dev container' }))).listen(8080);\n",
    });
    await run('git', ['init', '-q', proj.dir]);
    dir = join(proj.dir, '.devcontainer', `devbox-${api}`);
    configFile = join(dir, 'devcontainer.json');
  });

  after(async () => {
    await devbox(['down', api, '-n', ns.name]);
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
    await proj?.remove();
  });

  const open = () =>
    devcontainer(['up', '--workspace-folder', proj.dir, '--config', configFile, '--log-format', 'json'], {
      env: { KUBECONFIG: user.kubeconfig },
    });

  it('writes the configuration beside the project’s own, git-ignoring the session files', async () => {
    const result = await devboxWith([
      'devcontainer',
      'init',
      api,
      '-n',
      ns.name,
      '--folder',
      proj.dir,
      '--devbox-command',
      `${process.execPath} ${cliPath}`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    const text = await fs.readFile(configFile, 'utf8');
    assert.match(text, /^\/\/ Runs deployment\//, 'it explains itself in a comment');
    assert.match(text, /"\.\.\/hello"/, 'the local Feature is rebased');
    assert.match(text, /--network=container:devbox-/);
    assert.match(text, /--volumes-from=devbox-/);
    assert.match(text, /--sidecar-only/);
    // Re-running without --force keeps the user's edits.
    const again = await devboxWith(['devcontainer', 'init', api, '-n', ns.name, '--folder', proj.dir]);
    assert.equal(again.code, 5, again.stderr);
    assert.match(again.stderr, /--force/);
  });

  it('opening it starts the session and joins it, with the pod’s env and volumes', async () => {
    const started = Date.now();
    const result = await open();
    const outcome = upOutcome(result.stdout);
    assert.equal(outcome.outcome, 'success', result.stderr.slice(-3000));
    process.stderr.write(
      `  first open (sidecar, agent, dev container) took ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
    );
    containerId = outcome.containerId as string;

    const info = JSON.parse((await docker(['inspect', containerId])).stdout)[0] as Record<string, any>;
    const sidecar = JSON.parse(
      (await docker(['inspect', info.HostConfig.NetworkMode.replace('container:', '')])).stdout,
    )[0] as Record<string, any>;
    assert.equal(sidecar.Config.Labels['devbox.role'], 'sidecar');
    assert.equal(info.Config.Labels['devbox.session'], sidecar.Config.Labels['devbox.session']);
    assert.equal(info.Config.Labels['devbox.role'], 'service');
    assert.deepEqual(info.HostConfig.VolumesFrom, [sidecar.Name.replace(/^\//, '')]);

    assert.equal(await execIn(containerId, 'cat /etc/shop/greeting'), 'hello from the shop');
    assert.equal(await execIn(containerId, 'cat /app/server.js | head -c 100 | wc -c'), '100');
    assert.match(await execIn(containerId, 'env'), /^DB_PASSWORD=s3cret$/m);
    assert.equal(await execIn(containerId, 'cat /tmp/post-create-saw-volume'), 'hello from the shop');
    assert.equal(await execIn(containerId, 'cat /tmp/post-create-saw-env'), 's3cret');
    assert.equal(await execIn(containerId, 'cat /usr/local/share/hello'), "from the project's feature");
  });

  it('writes the pod’s env for you alone, and git ignores it', async () => {
    for (const file of ['session.env', 'session.labels']) {
      assert.equal((await fs.stat(join(dir, file))).mode & 0o777, 0o600, file);
      const ignored = await run('git', ['-C', proj.dir, 'check-ignore', join(dir, file)]);
      assert.equal(ignored.stdout.trim(), join(dir, file));
    }
    assert.match(await fs.readFile(join(dir, 'session.env'), 'utf8'), /^DB_PASSWORD=s3cret$/m);
  });

  it('receives the Service’s traffic', async () => {
    const workspace = (await execIn(containerId, 'ls -d /workspaces/*')).split('\n')[0];
    await docker(['exec', '-d', containerId, 'node', `${workspace}/server.js`]);
    await clusterHears(ns.name, api, (a) => a.where === 'editor dev container');
  });

  it('reopening after the editor stopped the container reuses the running session', async () => {
    await docker(['stop', '-t', '1', containerId]);
    const sessionsBefore = (await sessionContainers(ns.name)).sort();
    const started = Date.now();
    const result = await open();
    const outcome = upOutcome(result.stdout);
    assert.equal(outcome.outcome, 'success', result.stderr.slice(-3000));
    process.stderr.write(`  reopen took ${((Date.now() - started) / 1000).toFixed(1)}s\n`);
    assert.equal(outcome.containerId, containerId);
    assert.match(result.stderr, /already runs; it is reused/);
    assert.deepEqual((await sessionContainers(ns.name)).sort(), sessionsBefore);
    assert.equal(await execIn(containerId, 'cat /etc/shop/greeting'), 'hello from the shop');
  });

  it('devbox down removes the dev container, the sidecar and its volumes, and restores the cluster', async () => {
    const volumes = JSON.parse((await docker(['inspect', '-f', '{{json .Mounts}}', containerId])).stdout) as {
      Name?: string;
    }[];
    const result = await devbox(['down', api, '-n', ns.name]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await sessionContainers(ns.name), []);
    for (const v of volumes.filter((m) => m.Name?.startsWith('devbox-'))) {
      assert.notEqual((await docker(['volume', 'inspect', v.Name!])).code, 0, `volume ${v.Name} is left`);
    }
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
    await settled(ns.name, api);
  });

  it('the next open starts a new session', async () => {
    const result = await open();
    const outcome = upOutcome(result.stdout);
    assert.equal(outcome.outcome, 'success', result.stderr.slice(-3000));
    assert.notEqual(outcome.containerId, containerId);
    assert.equal(
      await execIn(outcome.containerId as string, 'cat /etc/shop/greeting'),
      'hello from the shop',
    );
    const down = await devbox(['down', api, '-n', ns.name]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
  });
});
