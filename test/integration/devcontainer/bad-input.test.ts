/**
 * `devbox up --devcontainer` with bad input: each failure says what is wrong
 * and what to do, and leaves nothing behind — no sidecar, no dev container, no
 * container of a failed build, no agent in the workload.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker, testNamespace } from '../../support/cluster.js';
import { clusterSnapshot, devbox as devboxAs, type RunAs } from '../../support/devbox.js';
import {
  deployShopAs,
  devboxWith as devboxWithAs,
  devImage,
  freePort,
  project,
  sessionContainers,
  sessionVolumes,
  settled,
  suffix,
} from './helpers.js';

/** Every devbox command runs as a user holding only the developer Role (set in `before`). */
const user: RunAs = {};
const devbox = (args: string[]) => devboxAs(args, user);
const devboxWith = (args: string[], options: Parameters<typeof devboxWithAs>[1] = {}) =>
  devboxWithAs(args, { ...options, as: user });

describe('devbox up --devcontainer with bad input', { timeout: 900_000 }, () => {
  const api = `dcbad-${suffix()}`;
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let pristine: Record<string, unknown>;
  let image: string;
  const projects: { remove: () => Promise<void> }[] = [];
  const make = async (files: Record<string, string>) => {
    const p = await project(files);
    projects.push(p);
    return p.dir;
  };

  before(async () => {
    ns = await testNamespace('dcbad');
    image = await devImage();
    user.kubeconfig = (await deployShopAs(ns.name, api)).kubeconfig;
    pristine = await clusterSnapshot(ns.name);
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
    for (const p of projects) await p.remove();
  });

  /** Nothing of a session is left, in the cluster or in Docker. */
  const assertNothingLeft = async () => {
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
    assert.deepEqual(await sessionContainers(ns.name), []);
    await settled(ns.name, api);
  };

  it('a folder without devcontainer.json: where devbox looked and what to do', async () => {
    const dir = await make({ 'README.md': 'no dev container here\n' });
    const result = await devboxWith(['up', api, '-n', ns.name, '--detach', '--devcontainer', dir]);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /No devcontainer\.json in /);
    assert.match(result.stderr, /\.devcontainer\/devcontainer\.json/);
    assert.match(result.stderr, /devbox devcontainer init/);
    await assertNothingLeft();
  });

  it('invalid JSONC: every error with its line and column', async () => {
    const dir = await make({
      '.devcontainer/devcontainer.json': `{
  "image": "${image}"
  "runArgs": ["--init",
}
`,
    });
    const result = await devboxWith(['up', api, '-n', ns.name, '--detach', '--devcontainer', dir]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /devcontainer\.json:3:3: a comma is expected/);
    assert.match(result.stderr, /devcontainer\.json:4:1: /);
    await assertNothingLeft();
  });

  it('settings Docker refuses on a joined container: where they are and what to change', async () => {
    const dir = await make({
      '.devcontainer/devcontainer.json': `{
  "image": "${image}",
  "runArgs": [
    "--hostname=dev",
    "--network", "bridge"
  ]
}
`,
    });
    const result = await devboxWith(['up', api, '-n', ns.name, '--detach', '--devcontainer', dir]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /devcontainer\.json:4:5: "--hostname=dev": .*hostname/);
    assert.match(result.stderr, /devcontainer\.json:5:5: "--network bridge"/);
    assert.match(result.stderr, /remove it from "runArgs"/);
    await assertNothingLeft();
  });

  it('a Docker Compose configuration is refused before anything starts', async () => {
    const dir = await make({
      '.devcontainer/devcontainer.json': '{ "dockerComposeFile": "compose.yml", "service": "app" }',
    });
    const result = await devboxWith(['up', api, '-n', ns.name, '--detach', '--devcontainer', dir]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /Docker Compose dev containers are not supported/);
    await assertNothingLeft();
  });

  it('a Dockerfile that fails to build: the failing step, and no container of the build or the session', async () => {
    const marker = `devbox-bad-build-${suffix()}`;
    const dir = await make({
      '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" } }',
      '.devcontainer/Dockerfile': `FROM ${image}\nRUN echo ${marker} && exit 3\n`,
    });
    const volumes = await sessionVolumes();
    const result = await devboxWith(['up', api, '-n', ns.name, '--detach', '--devcontainer', dir]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /devcontainer up failed: .*returned a non-zero code: 3/);
    assert.match(result.stderr, new RegExp(marker), 'the build output is shown');
    assert.match(result.stderr, /Undoing: restoring deployment\//);
    await assertNothingLeft();
    const commands = (await docker(['ps', '-a', '--no-trunc', '--format', '{{.Command}}'])).stdout;
    assert.doesNotMatch(commands, new RegExp(marker), 'the failed RUN step left no container');
    assert.deepEqual(
      [...(await sessionVolumes())].filter((v) => !volumes.has(v)),
      [],
    );
  });

  it('a lifecycle command that fails: the created dev container is removed too', async () => {
    const dir = await make({
      '.devcontainer/devcontainer.json': `{ "image": "${image}", "postCreateCommand": "echo setting up && exit 4" }`,
    });
    const result = await devboxWith(['up', api, '-n', ns.name, '--detach', '--devcontainer', dir]);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /failed/);
    await assertNothingLeft();
  });

  it('an unreachable remote Docker engine: named, and the cluster untouched', async () => {
    const dir = await make({ '.devcontainer/devcontainer.json': `{ "image": "${image}" }` });
    const port = await freePort();
    const result = await devboxWith(['up', api, '-n', ns.name, '--detach', '--devcontainer', dir], {
      env: { DOCKER_HOST: `tcp://127.0.0.1:${port}` },
      timeoutMs: 60_000,
    });
    assert.equal(result.code, 6, result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `Cannot reach the Docker engine at tcp://127\\.0\\.0\\.1:${port} \\(from DOCKER_HOST\\): connection refused`,
      ),
    );
    await assertNothingLeft();
  });
});
