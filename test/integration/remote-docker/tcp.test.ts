/**
 * devbox against a Docker engine reached with DOCKER_HOST=tcp://127.0.0.1:<port>
 * that cannot see this machine's files (a second dockerd in a mount namespace
 * of its own, on its own bridge): a plain session, `--devcontainer` (the
 * workspace copied into a volume, the pod's files by tar), and an editor-made
 * dev container from `devbox devcontainer init`. Nothing relies on a bind
 * mount of devbox's own files.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { clusterImages, testNamespace } from '../../support/cluster.js';
import { clusterSnapshot } from '../../support/devbox.js';
import {
  cliPath,
  clusterHears,
  deployShopAs,
  devboxWith,
  devcontainer,
  devImage,
  execIn,
  helloFeature,
  project,
  sessionContainers,
  settled,
  suffix,
  upOutcome,
} from '../devcontainer/helpers.js';
import { type SecondEngine, startSecondEngine } from './dockerd.js';

const execFileP = promisify(execFile);

describe('devbox with DOCKER_HOST=tcp://127.0.0.1 on an engine with its own file system', {
  timeout: 1_200_000,
}, () => {
  const api = `rdapi-${suffix()}`;
  let engine: SecondEngine;
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let pristine: Record<string, unknown>;
  let image: string;
  const projects: { dir: string; remove: () => Promise<void> }[] = [];
  /** devbox runs as a user holding only the developer Role (set in `before`). */
  const user: { kubeconfig?: string } = {};
  const remote = (args: string[]) => devboxWith(args, { env: engine.env, as: user });

  before(async () => {
    engine = await startSecondEngine();
    ns = await testNamespace('rd');
    image = await devImage();
    await engine.load(clusterImages().runtime, image);
    user.kubeconfig = (await deployShopAs(ns.name, api)).kubeconfig;
    pristine = await clusterSnapshot(ns.name);
  });

  after(async () => {
    if (engine) await remote(['clean', '-n', ns.name, '--force']);
    await engine?.stop();
    await ns?.remove();
    for (const p of projects) await p.remove();
  });

  const assertClean = async () => {
    assert.deepEqual(await sessionContainers(ns.name, engine.env), []);
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
    await settled(ns.name, api);
  };

  it('the engine is separate: its own bridge, and this machine’s /tmp is not its /tmp', async () => {
    const proj = await project({ 'marker.txt': 'here\n' });
    projects.push(proj);
    const seen = await engine.docker(['run', '--rm', '-v', `${proj.dir}:/p`, image, 'ls', '/p']);
    assert.equal(seen.stdout.trim(), '', 'the engine created an empty directory of its own');
    const info = await engine.docker([
      'network',
      'inspect',
      'bridge',
      '--format',
      '{{(index .IPAM.Config 0).Gateway}}',
    ]);
    assert.equal(info.stdout.trim(), '172.30.0.1');
  });

  it('runs a plain session there: files by tar, the cluster by name', async () => {
    const result = await remote(['up', api, '-n', ns.name, '--detach', '-o', 'json']);
    assert.equal(result.code, 0, result.stderr);
    const session = JSON.parse(result.stdout) as { containers: { service: string } };
    const service = session.containers.service;
    // The pod's image has Node.js and no shell.
    const greeting = await engine.docker([
      'exec',
      service,
      'node',
      '-e',
      "process.stdout.write(require('fs').readFileSync('/etc/shop/greeting', 'utf8'))",
    ]);
    assert.equal(greeting.stdout, 'hello from the shop', greeting.stderr);
    const inventory = await engine.docker([
      'exec',
      service,
      'node',
      '-e',
      `fetch('http://inventory.${ns.name}/items').then(r => r.json()).then(b => console.log(b.service))`,
    ]);
    assert.equal(inventory.stdout.trim(), 'inventory', inventory.stderr);
    assert.deepEqual(await sessionContainers(ns.name), [], 'nothing on the first engine');
    const down = await remote(['down', api, '-n', ns.name]);
    assert.equal(down.code, 0, down.stderr);
    await assertClean();
  });

  it('runs the project’s devcontainer.json there, the workspace copied into a volume', async () => {
    const proj = await project({
      '.devcontainer/devcontainer.json': JSON.stringify({
        build: { dockerfile: 'Dockerfile' },
        features: { './hello': { greeting: 'remote feature' } },
        postCreateCommand: 'cat /etc/shop/greeting > /tmp/post-create-saw-volume',
      }),
      '.devcontainer/Dockerfile': `FROM ${image}\n`,
      '.devcontainer/hello/devcontainer-feature.json': helloFeature['devcontainer-feature.json'],
      '.devcontainer/hello/install.sh': helloFeature['install.sh'],
      'server.js':
        "require('node:http').createServer((q, s) => s.end(JSON.stringify({ where: 'remote dev container' }))).listen(8080);\n",
    });
    projects.push(proj);
    const started = Date.now();
    const result = await remote([
      'up',
      api,
      '-n',
      ns.name,
      '--detach',
      '--devcontainer',
      proj.dir,
      '-o',
      'json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    process.stderr.write(
      `  devbox up --devcontainer on the second engine took ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
    );
    assert.match(result.stderr, /cannot see .*: it was copied into the volume devbox-workspace-/);
    const session = JSON.parse(result.stdout) as Record<string, any>;
    const dev = session.containers.service as string;
    const folder = session.devcontainer.remoteWorkspaceFolder as string;

    assert.match(await execIn(dev, `ls ${folder}`, engine.env), /server\.js/);
    assert.equal(await execIn(dev, 'cat /tmp/post-create-saw-volume', engine.env), 'hello from the shop');
    assert.equal(await execIn(dev, 'cat /usr/local/share/hello', engine.env), 'remote feature');
    assert.match(await execIn(dev, 'env', engine.env), /^DB_PASSWORD=s3cret$/m);
    await engine.docker(['exec', '-d', dev, 'node', `${folder}/server.js`]);
    await clusterHears(ns.name, api, (a) => a.where === 'remote dev container');

    const down = await remote(['down', api, '-n', ns.name]);
    assert.equal(down.code, 0, down.stderr);
    await assertClean();
    const kept = await engine.docker(['volume', 'ls', '-q', '--filter', 'label=devbox.workspace']);
    assert.match(kept.stdout, /devbox-workspace-/, 'the copy (with any edits) outlives the session');
  });

  it('a Docker context naming the engine works as DOCKER_HOST does, for devbox and the Dev Containers CLI', async () => {
    const proj = await project({ '.devcontainer/devcontainer.json': JSON.stringify({ image }) });
    projects.push(proj);
    // A CLI configuration of the test's own: the user's ~/.docker is not touched.
    const config = await mkdtemp(join(tmpdir(), 'devbox-docker-config-'));
    try {
      const env = { ...process.env, DOCKER_CONFIG: config, DOCKER_HOST: '' };
      const cli = (args: string[]) => execFileP('docker', args, { env });
      await cli(['context', 'create', 'second-engine', '--docker', `host=${engine.host}`]);
      await cli(['context', 'use', 'second-engine']);
      const result = await devboxWith(
        ['up', api, '-n', ns.name, '--detach', '--devcontainer', proj.dir, '-o', 'json'],
        {
          env: { DOCKER_CONFIG: config, DOCKER_HOST: '' },
          as: user,
        },
      );
      assert.equal(result.code, 0, result.stderr);
      const session = JSON.parse(result.stdout) as Record<string, any>;
      const found = await engine.docker(['inspect', '-f', '{{.Config.Labels}}', session.containers.service]);
      assert.equal(found.code, 0, 'the dev container is on the engine the context names');
      assert.deepEqual(await sessionContainers(ns.name), [], 'nothing on the first engine');
      const down = await devboxWith(['down', api, '-n', ns.name], {
        env: { DOCKER_CONFIG: config, DOCKER_HOST: '' },
        as: user,
      });
      assert.equal(down.code, 0, down.stderr);
      await assertClean();
    } finally {
      await rm(config, { recursive: true, force: true });
    }
  });

  it('an editor-made dev container from devbox devcontainer init works there too', async () => {
    const proj = await project({
      '.devcontainer/devcontainer.json': JSON.stringify({ image }),
      'README.md': 'remote\n',
    });
    projects.push(proj);
    const init = await remote([
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
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stderr, /copied into the volume/);
    const configFile = `${proj.dir}/.devcontainer/devbox-${api}/devcontainer.json`;
    const result = await devcontainer(
      ['up', '--workspace-folder', proj.dir, '--config', configFile, '--log-format', 'json'],
      { env: { ...engine.env, KUBECONFIG: user.kubeconfig } },
    );
    const outcome = upOutcome(result.stdout);
    assert.equal(outcome.outcome, 'success', result.stderr.slice(-3000));
    const dev = outcome.containerId as string;
    assert.equal(await execIn(dev, 'cat /etc/shop/greeting', engine.env), 'hello from the shop');
    assert.match(await execIn(dev, 'env', engine.env), /^DB_PASSWORD=s3cret$/m);
    assert.match(await execIn(dev, `ls ${outcome.remoteWorkspaceFolder}`, engine.env), /README\.md/);
    const down = await remote(['down', api, '-n', ns.name]);
    assert.equal(down.code, 0, down.stderr);
    await assertClean();
  });
});
