/**
 * This repository's own .devcontainer, brought up by the Dev Containers CLI
 * on a copy of the repository: Node.js builds devbox inside, the Docker CLI
 * reaches the host's engine through its socket, kubectl reaches the local
 * cluster. No registry is reachable here, so the base image and the two
 * registry Features are swapped for local stand-ins of the same tools (an
 * image with Node.js and npm; Features that install the host's static docker
 * and kubectl binaries and mount the socket as docker-outside-of-docker
 * does), `npm ci` is left out of postCreateCommand (node_modules is copied),
 * and the remote user is root because the host user here is root. Everything
 * else — mounts, runArgs, initializeCommand, containerEnv — is the file as
 * committed.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parseJsonc } from '../../../src/devcontainer/jsonc.js';
import { clusterDir, docker } from '../../support/cluster.js';
import {
  devcontainer,
  devImage,
  execIn,
  removeBuiltImages,
  removeDevcontainersOf,
  repoRoot,
  upOutcome,
} from './helpers.js';

const run = promisify(execFile);

/** A dev image plus the host's npm, as the typescript-node image has it. */
async function imageWithNpm(work: string): Promise<string> {
  const base = await devImage();
  const tag = `${base.replace(':', '-npm:')}`;
  if ((await docker(['image', 'inspect', tag])).code === 0) return tag;
  const npmDir = (
    await run('node', [
      '-e',
      "console.log(require('path').dirname(require.resolve('npm/package.json', { paths: [process.execPath + '/../../lib/node_modules', '/usr/lib/node_modules', '/usr/local/lib/node_modules'] })))",
    ])
  ).stdout.trim();
  const context = join(work, 'npm-image');
  await fs.mkdir(context, { recursive: true });
  await fs.cp(npmDir, join(context, 'npm'), { recursive: true, verbatimSymlinks: true });
  await fs.writeFile(
    join(context, 'Dockerfile'),
    `FROM ${base}
COPY npm /usr/local/lib/node_modules/npm
RUN printf '#!/bin/sh\\nexec node /usr/local/lib/node_modules/npm/bin/npm-cli.js "$@"\\n' > /usr/local/bin/npm && chmod 755 /usr/local/bin/npm
`,
  );
  const built = await docker(['build', '--force-rm', '-q', '-t', tag, context], 300_000);
  if (built.code !== 0) throw new Error(`building ${tag}: ${built.stderr}`);
  return tag;
}

/** A local Feature that installs a host binary (copied into its folder) into /usr/local/bin. */
async function binaryFeature(dir: string, id: string, binary: string, extra: Record<string, unknown> = {}) {
  await fs.mkdir(dir, { recursive: true });
  await fs.copyFile(await fs.realpath(binary), join(dir, id));
  await fs.writeFile(
    join(dir, 'devcontainer-feature.json'),
    JSON.stringify({ id, version: '1.0.0', name: id, ...extra }),
  );
  await fs.writeFile(
    join(dir, 'install.sh'),
    `#!/bin/sh\nset -e\ncp ${id} /usr/local/bin/${id}\nchmod 0755 /usr/local/bin/${id}\n`,
    { mode: 0o755 },
  );
}

describe('the repository’s .devcontainer', { timeout: 900_000 }, () => {
  let work: string;
  let workspace: string;
  let container: string | undefined;

  before(async () => {
    work = await fs.mkdtemp(join(tmpdir(), 'devbox-repo-dc-'));
    workspace = join(work, 'devbox');
    await fs.mkdir(workspace);
    for (const path of [
      'package.json',
      'package-lock.json',
      'tsconfig.json',
      'biome.json',
      'scripts',
      'src',
      'test',
      'templates',
      'containers',
      '.devcontainer',
    ]) {
      await fs.cp(join(repoRoot, path), join(workspace, path), { recursive: true });
    }
    // node_modules as hard links: instant, and the build inside only reads it.
    await run('cp', ['-al', join(repoRoot, 'node_modules'), join(workspace, 'node_modules')]);
  });

  after(async () => {
    if (container) await docker(['rm', '-f', container]);
    await removeDevcontainersOf(workspace);
    await removeBuiltImages(workspace);
    await fs.rm(work, { recursive: true, force: true });
  });

  it('starts, builds devbox inside, and reaches the host’s Docker engine and the local cluster', async () => {
    const configPath = join(workspace, '.devcontainer', 'devcontainer.json');
    const config = parseJsonc(await fs.readFile(configPath, 'utf8'), configPath).value as Record<string, any>;
    assert.deepEqual(Object.keys(config.features).sort(), [
      'ghcr.io/devcontainers/features/docker-outside-of-docker:1',
      'ghcr.io/devcontainers/features/kubectl-helm-minikube:1',
    ]);
    assert.equal(config.postCreateCommand, 'npm ci && npm run build');

    const standIns = join(workspace, '.devcontainer', 'stand-ins');
    const dockerCli = (await run('sh', ['-c', 'command -v docker'])).stdout.trim();
    await binaryFeature(join(standIns, 'docker'), 'docker', dockerCli, {
      mounts: [{ source: '/var/run/docker.sock', target: '/var/run/docker.sock', type: 'bind' }],
    });
    await binaryFeature(join(standIns, 'kubectl'), 'kubectl', join(clusterDir, 'bin', 'kubectl'));
    const override = join(work, 'override.json');
    await fs.writeFile(
      override,
      JSON.stringify({
        ...config,
        image: await imageWithNpm(work),
        features: { './stand-ins/docker': {}, './stand-ins/kubectl': {} },
        postCreateCommand: 'npm run build',
        remoteUser: 'root',
      }),
    );

    const started = Date.now();
    const result = await devcontainer([
      'up',
      '--workspace-folder',
      workspace,
      '--override-config',
      override,
      '--log-format',
      'json',
    ]);
    const outcome = upOutcome(result.stdout);
    assert.equal(outcome.outcome, 'success', result.stderr.slice(-4000));
    container = outcome.containerId as string;
    process.stderr.write(
      `  the repository's dev container (with npm run build inside) took ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
    );
    const folder = outcome.remoteWorkspaceFolder as string;

    assert.match(await execIn(container, 'node --version'), /^v2\d\./);
    assert.equal(
      await execIn(
        container,
        `test -f ${folder}/dist/src/cli/main.js && test -f ${folder}/dist/bundle/sidecar.mjs && echo built`,
      ),
      'built',
    );
    const hostEngine = (await docker(['version', '--format', '{{.Server.Version}}'])).stdout.trim();
    assert.equal(await execIn(container, "docker version --format '{{.Server.Version}}'"), hostEngine);
    assert.match(
      await execIn(
        container,
        'kubectl --kubeconfig "$DEVBOX_CLUSTER_DIR/kubeconfig" get namespace default -o name',
      ),
      /^namespace\/default$/,
    );
    // devbox built inside finds the engine and the cluster as the tests do.
    const status = JSON.parse(
      await execIn(
        container,
        `cd ${folder} && KUBECONFIG="$DEVBOX_CLUSTER_DIR/kubeconfig" node dist/src/cli/main.js status -o json`,
      ),
    );
    assert.ok(Array.isArray(status));
  });
});
