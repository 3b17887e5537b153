/**
 * devbox run from inside a container that has the engine's socket (as in a
 * dev container or Codespaces): the paths devbox sees are its container's,
 * the engine's are the host's. `devbox up --devcontainer` with a `-v` mount
 * must give the dev container the host's paths for both the workspace and
 * the mount, found through devbox's own container's mounts.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findOnPath } from '../../../src/devcontainer/cli.js';
import { clusterImages, docker, testNamespace } from '../../support/cluster.js';
import { clusterSnapshot, devbox } from '../../support/devbox.js';
import {
  deployShopAs,
  devImage,
  execIn,
  removeBuiltImages,
  repoRoot,
  sessionContainers,
  suffix,
} from '../devcontainer/helpers.js';

/**
 * The dev image with the (static) docker CLI of this machine and an `ldd`
 * (glibc's is a script around the dynamic loader; busybox has none), as a
 * Debian-based dev container has them.
 */
async function imageWithDockerCli(work: string): Promise<string> {
  const base = await devImage();
  const tag = base.replace(':', '-docker-cli:').replace(/$/, '-3');
  if ((await docker(['image', 'inspect', tag])).code === 0) return tag;
  const context = join(work, 'docker-cli-image');
  await fs.mkdir(context, { recursive: true });
  await fs.copyFile(
    await fs.realpath((await findOnPath('docker')) ?? '/usr/bin/docker'),
    join(context, 'docker'),
  );
  // What glibc's ldd does: ask the dynamic loader, which refuses static executables.
  await fs.writeFile(
    join(context, 'ldd'),
    `#!/bin/sh
loader=/lib64/ld-linux-x86-64.so.2
for f in "$@"; do
  "$loader" --verify "$f" >/dev/null 2>&1
  case $? in
    0 | 2) LD_TRACE_LOADED_OBJECTS=1 "$loader" "$f" || exit 1 ;;
    *) echo "	not a dynamic executable"; exit 1 ;;
  esac
done
`,
    { mode: 0o755 },
  );
  await fs.writeFile(
    join(context, 'Dockerfile'),
    `FROM ${base}\nCOPY docker /usr/local/bin/docker\nCOPY ldd /usr/bin/ldd\n`,
  );
  const built = await docker(['build', '--force-rm', '-q', '-t', tag, context], 300_000);
  if (built.code !== 0) throw new Error(`building ${tag}: ${built.stderr}`);
  return tag;
}

describe('devbox inside a container that has the Docker socket', { timeout: 900_000 }, () => {
  const api = `icapi-${suffix()}`;
  const name = `devbox-in-container-${suffix()}`;
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let developer: { kubeconfig: string } | undefined;
  let work: string;
  let pristine: Record<string, unknown>;

  before(async () => {
    ns = await testNamespace('ic');
    work = await fs.mkdtemp(join(tmpdir(), 'devbox-in-container-'));
    const image = await devImage();
    await fs.mkdir(join(work, 'src', 'proj', '.devcontainer'), { recursive: true });
    await fs.mkdir(join(work, 'src', 'data'), { recursive: true });
    await fs.writeFile(
      join(work, 'src', 'proj', '.devcontainer', 'devcontainer.json'),
      JSON.stringify({ image, postCreateCommand: 'ls /data > /tmp/post-create-saw-data' }),
    );
    await fs.writeFile(join(work, 'src', 'proj', 'app.js'), 'console.log("app")\n');
    await fs.writeFile(join(work, 'src', 'data', 'seed.txt'), 'seed\n');
    const withCli = await imageWithDockerCli(work);
    // devbox runs as a user holding only the developer Role.
    developer = await deployShopAs(ns.name, api);
    pristine = await clusterSnapshot(ns.name);
    // devbox's container: the host's network (the API server is on its loopback), the socket,
    // the built devbox read-only, and the user's files under /src.
    const started = await docker([
      'run',
      '-d',
      '--name',
      name,
      '--network',
      'host',
      '-v',
      '/var/run/docker.sock:/var/run/docker.sock',
      '-v',
      `${repoRoot}:/devbox:ro`,
      '-v',
      `${join(work, 'src')}:/src`,
      '-v',
      `${developer!.kubeconfig}:/kube/config:ro`,
      '-e',
      'KUBECONFIG=/kube/config',
      '-e',
      `DEVBOX_AGENT_IMAGE=${clusterImages().runtime}`,
      withCli,
      'sleep',
      '3600',
    ]);
    assert.equal(started.code, 0, started.stderr);
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force'], developer ?? {});
    await docker(['rm', '-f', name]);
    await removeBuiltImages(join(work, 'src', 'proj'));
    await ns?.remove();
    await fs.rm(work, { recursive: true, force: true });
  });

  it('gives the dev container the host’s paths for the workspace and for -v', async () => {
    const result = await docker(
      [
        'exec',
        name,
        'node',
        '/devbox/dist/src/cli/main.js',
        'up',
        api,
        '-n',
        ns.name,
        '--detach',
        '--devcontainer',
        '/src/proj',
        '-v',
        '/src/data:/data:ro',
        '-o',
        'json',
      ],
      300_000,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`mounted from the engine's path ${join(work, 'src', 'proj')}`));
    const session = JSON.parse(result.stdout) as Record<string, any>;
    const dev = session.containers.service as string;
    const mounts = JSON.parse((await docker(['inspect', '-f', '{{json .Mounts}}', dev])).stdout) as {
      Type: string;
      Source: string;
      Destination: string;
    }[];
    const byTarget = Object.fromEntries(mounts.map((m) => [m.Destination, m]));
    assert.equal(byTarget['/workspaces/proj']?.Source, join(work, 'src', 'proj'));
    assert.equal(byTarget['/data']?.Source, join(work, 'src', 'data'));
    assert.equal(await execIn(dev, 'cat /workspaces/proj/app.js'), 'console.log("app")');
    assert.equal(await execIn(dev, 'cat /tmp/post-create-saw-data'), 'seed.txt');
    assert.equal(await execIn(dev, 'cat /etc/shop/greeting'), 'hello from the shop');

    const down = await docker(
      ['exec', name, 'node', '/devbox/dist/src/cli/main.js', 'down', api, '-n', ns.name],
      120_000,
    );
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await sessionContainers(ns.name), []);
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
  });
});
