/**
 * `devbox up <workload> --devcontainer`: the project's own devcontainer.json
 * (a Dockerfile, a local Feature with an option, a lifecycle command, appPort,
 * containerEnv) run by the real Dev Containers CLI, joined to the session's
 * sidecar with the pod's env and volumes; `devbox down` removes it and leaves
 * the cluster as it was.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker, testNamespace } from '../../support/cluster.js';
import { clusterSnapshot, devbox as devboxAs, type RunAs } from '../../support/devbox.js';
import {
  clusterHears,
  deployShopAs,
  devboxWith as devboxWithAs,
  devImage,
  execIn,
  freePort,
  helloFeature,
  project,
  sessionContainers,
  sessionVolumes,
  suffix,
} from './helpers.js';

/** Every devbox command runs as a user holding only the developer Role (set in `before`). */
const user: RunAs = {};
const devbox = (args: string[]) => devboxAs(args, user);
const devboxWith = (args: string[], options: Parameters<typeof devboxWithAs>[1] = {}) =>
  devboxWithAs(args, { ...options, as: user });

describe('devbox up --devcontainer', { timeout: 900_000 }, () => {
  const api = `dcapi-${suffix()}`;
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let proj: Awaited<ReturnType<typeof project>>;
  let pristine: Record<string, unknown>;
  let appPort: number;
  let session: Record<string, any>;
  let upSeconds = 0;

  before(async () => {
    ns = await testNamespace('dc');
    const image = await devImage();
    user.kubeconfig = (await deployShopAs(ns.name, api)).kubeconfig;
    pristine = await clusterSnapshot(ns.name);
    appPort = await freePort();
    proj = await project({
      '.devcontainer/devcontainer.json': `{
  // The project's own dev container: nothing in it knows about devbox.
  "name": "shop api",
  "build": { "dockerfile": "Dockerfile", "args": { "GREETING_FILE": "/usr/local/share/built" } },
  "features": { "./hello": { "greeting": "hey from a feature" } },
  "appPort": [${appPort}],
  "containerEnv": { "SHOP_LOG_LEVEL": "info", "EDITOR_MODE": "on" },
  "runArgs": ["--init"],
  "postCreateCommand": "cat /etc/shop/greeting > /tmp/post-create-saw-volume; env > /tmp/post-create-env",
}
`,
      '.devcontainer/Dockerfile': `FROM ${image}\nARG GREETING_FILE\nRUN echo built > $GREETING_FILE\n`,
      '.devcontainer/hello/devcontainer-feature.json': helloFeature['devcontainer-feature.json'],
      '.devcontainer/hello/install.sh': helloFeature['install.sh'],
      'server.js':
        "require('node:http').createServer((q, s) => s.end(JSON.stringify({ where: 'dev container', db: process.env.DB_PASSWORD ? 'set' : 'unset' }))).listen(8080);\n",
    });
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
    await proj?.remove();
  });

  it('builds and starts the dev container joined to the session', async () => {
    const started = Date.now();
    const result = await devboxWith([
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
    upSeconds = (Date.now() - started) / 1000;
    assert.equal(result.code, 0, result.stderr);
    session = JSON.parse(result.stdout) as Record<string, any>;
    assert.equal(session.workload, `deployment/${api}`);
    assert.equal(session.devcontainer.remoteWorkspaceFolder, `/workspaces/${proj.dir.split('/').at(-1)}`);
    assert.match(result.stderr, /appPort \d+ is published on the session sidecar/);
    assert.match(result.stderr, /containerEnv SHOP_LOG_LEVEL .* is replaced by the pod's value/);
    process.stderr.write(`  devbox up --devcontainer took ${upSeconds.toFixed(1)}s\n`);
  });

  it('shares the sidecar’s network, DNS and hostname and carries the session labels', async () => {
    const dev = session.containers.service as string;
    const sidecarId = (await docker(['inspect', '-f', '{{.Id}}', session.containers.sidecar])).stdout.trim();
    assert.equal(
      (await docker(['inspect', '-f', '{{.HostConfig.NetworkMode}}', dev])).stdout.trim(),
      `container:${sidecarId}`,
    );
    const labels = JSON.parse(
      (await docker(['inspect', '-f', '{{json .Config.Labels}}', dev])).stdout,
    ) as Record<string, string>;
    assert.equal(labels['devbox.session'], session.session);
    assert.equal(labels['devbox.role'], 'service');
    assert.equal(labels['devbox.namespace'], ns.name);
    const resolv = await execIn(dev, 'cat /etc/resolv.conf');
    assert.match(resolv, new RegExp(`search ${ns.name}\\.svc\\.cluster\\.local`));
    assert.match(resolv, /nameserver 127\.0\.0\.1/);
    const inventory = await execIn(
      dev,
      `node -e "fetch('http://inventory.${ns.name}/items').then(r => r.json()).then(b => console.log(b.service))"`,
    );
    assert.equal(inventory, 'inventory');
  });

  it('has the pod’s env, with the pod winning over containerEnv', async () => {
    const env = await execIn(session.containers.service, 'env');
    assert.match(env, /^DB_PASSWORD=s3cret$/m);
    assert.match(env, /^DB_URL=postgres:\/\/shop:s3cret@db-0\.db:5432\/shop$/m);
    assert.match(env, /^SHOP_LOG_LEVEL=debug$/m);
    assert.match(env, /^EDITOR_MODE=on$/m);
    assert.match(env, new RegExp(`^DEVBOX_SESSION=${session.session}$`, 'm'));
    assert.match(env, /^HELLO_FEATURE=1$/m);
  });

  it('has the pod’s volumes before its lifecycle commands run, and they saw the env', async () => {
    const dev = session.containers.service as string;
    assert.equal(await execIn(dev, 'cat /etc/shop/greeting'), 'hello from the shop');
    assert.equal(await execIn(dev, 'cat /etc/shop-secret/password'), 's3cret');
    assert.equal(await execIn(dev, 'cat /tmp/post-create-saw-volume'), 'hello from the shop');
    assert.match(await execIn(dev, 'cat /tmp/post-create-env'), /^DB_PASSWORD=s3cret$/m);
  });

  it('ran the Dockerfile and the Feature with its option, and mounted the workspace', async () => {
    const dev = session.containers.service as string;
    assert.equal(await execIn(dev, 'cat /usr/local/share/built'), 'built');
    assert.equal(await execIn(dev, 'cat /usr/local/share/hello'), 'hey from a feature');
    assert.match(await execIn(dev, `ls ${session.devcontainer.remoteWorkspaceFolder}`), /server\.js/);
  });

  it('publishes appPort on the sidecar and receives the Service’s traffic', async () => {
    const port = (await docker(['port', session.containers.sidecar])).stdout;
    assert.match(port, new RegExp(`${appPort}/tcp -> 127\\.0\\.0\\.1:${appPort}`));
    await docker([
      'exec',
      '-d',
      session.containers.service,
      'node',
      `${session.devcontainer.remoteWorkspaceFolder}/server.js`,
    ]);
    const answer = await clusterHears(ns.name, api, (a) => a.where === 'dev container');
    assert.equal(answer.db, 'set');
  });

  it('shows in devbox status as a running session', async () => {
    const status = await devbox(['status', '-o', 'json']);
    const mine = (JSON.parse(status.stdout) as { namespace: string; state?: string; ready?: boolean }[]).find(
      (s) => s.namespace === ns.name,
    );
    assert.ok(mine, status.stdout);
    assert.ok(mine.ready ?? mine.state === 'running', status.stdout);
  });

  it('down removes the dev container with the sidecar and restores the cluster', async () => {
    const volumesBefore = await sessionVolumes();
    const result = await devbox(['down', api, '-n', ns.name]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await sessionContainers(ns.name), []);
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
    const left = [...(await sessionVolumes())].filter((v) => v.includes(session.session));
    assert.deepEqual(left, [], `volumes before: ${[...volumesBefore].join(', ')}`);
  });
});
