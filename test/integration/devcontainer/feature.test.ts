/**
 * The devbox Feature and Template under templates/devcontainer, used by the
 * real Dev Containers CLI. `devcontainer features test` would pull its base
 * images, so each is brought up with `devcontainer up` on the local dev
 * image instead, the Feature applied from a local folder with a packed devbox.
 */
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseJsonc } from '../../../src/devcontainer/jsonc.js';
import { clusterImages, docker } from '../../support/cluster.js';
import {
  devcontainer,
  devImage,
  execIn,
  removeBuiltImages,
  removeDevcontainersOf,
  repoRoot,
  suffix,
  upOutcome,
} from './helpers.js';
import { packBundled } from './pack.js';

const featureDir = join(repoRoot, 'templates/devcontainer/features/src/devbox');
const templateDir = join(repoRoot, 'templates/devcontainer/templates/src/devbox');

/** What `devcontainer templates apply` does to a Template's files: each `${templateOption:id}` replaced. */
function applyOptions(text: string, options: Record<string, string>): string {
  return text.replace(/\$\{templateOption:([^}]+)\}/g, (_, id: string) => {
    if (!(id in options)) throw new Error(`template option ${id} has no value`);
    return options[id]!;
  });
}

describe('the devbox Feature and Template', { timeout: 900_000 }, () => {
  let work: string;
  let tarball: string;
  let image: string;
  const containers: string[] = [];

  before(async () => {
    work = await fs.mkdtemp(join(tmpdir(), 'devbox-feature-'));
    image = await devImage();
    tarball = await packBundled(work);
  });

  const folders: string[] = [];
  after(async () => {
    for (const id of containers) await docker(['rm', '-f', id]);
    for (const dir of folders) {
      await removeDevcontainersOf(dir);
      await removeBuiltImages(dir);
    }
    await fs.rm(work, { recursive: true, force: true });
  });

  /** A workspace whose .devcontainer holds `config` and the Feature (with the packed devbox) under ./devbox. */
  const workspace = async (name: string, config: string) => {
    const dir = join(work, `${name}-${suffix()}`);
    folders.push(dir);
    await fs.mkdir(join(dir, '.devcontainer'), { recursive: true });
    await fs.cp(featureDir, join(dir, '.devcontainer', 'devbox'), { recursive: true });
    await fs.copyFile(tarball, join(dir, '.devcontainer', 'devbox', 'devbox.tgz'));
    await fs.writeFile(join(dir, '.devcontainer', 'devcontainer.json'), config);
    return dir;
  };

  it('declares what the specification requires', async () => {
    const feature = parseJsonc(
      await fs.readFile(join(featureDir, 'devcontainer-feature.json'), 'utf8'),
      'feature',
    ).value as Record<string, any>;
    assert.equal(feature.id, 'devbox', 'the id is the folder name');
    assert.match(feature.version, /^\d+\.\d+\.\d+$/);
    for (const [id, option] of Object.entries(feature.options as Record<string, any>)) {
      assert.ok(['string', 'boolean'].includes(option.type), id);
      assert.ok('default' in option && option.description, id);
    }
    assert.ok(
      ((await fs.stat(join(featureDir, 'install.sh'))).mode & 0o111) !== 0,
      'install.sh is executable',
    );

    const template = parseJsonc(
      await fs.readFile(join(templateDir, 'devcontainer-template.json'), 'utf8'),
      'template',
    ).value as Record<string, any>;
    assert.equal(template.id, 'devbox');
    assert.match(template.version, /^\d+\.\d+\.\d+$/);
    const declared = Object.keys(template.options as object).sort();
    const text = await fs.readFile(join(templateDir, '.devcontainer', 'devcontainer.json'), 'utf8');
    const used = [...new Set([...text.matchAll(/\$\{templateOption:([^}]+)\}/g)].map((m) => m[1]))].sort();
    assert.deepEqual(used, declared, 'every option is used and every placeholder declared');
    const defaults = Object.fromEntries(
      Object.entries(template.options as Record<string, any>).map(([k, v]) => [k, String(v.default)]),
    );
    const applied = parseJsonc(applyOptions(text, defaults), 'applied').value as Record<string, any>;
    assert.ok(applied.features[defaults.devboxFeature!], 'the Template uses the Feature');
  });

  it('installs devbox from a packed tarball into an image without npm, and devbox works there', async () => {
    const dir = await workspace(
      'feature',
      JSON.stringify({
        image,
        features: { './devbox': { package: './devbox.tgz' } },
        mounts: ['source=/var/run/docker.sock,target=/var/run/docker.sock,type=bind'],
      }),
    );
    const started = Date.now();
    const result = await devcontainer(['up', '--workspace-folder', dir, '--log-format', 'json']);
    const outcome = upOutcome(result.stdout);
    assert.equal(outcome.outcome, 'success', result.stderr.slice(-3000));
    containers.push(outcome.containerId);
    process.stderr.write(
      `  image with the Feature built and started in ${((Date.now() - started) / 1000).toFixed(1)}s\n`,
    );
    assert.match(result.stderr, /devbox 0\.1\.0 installed/);
    assert.equal(await execIn(outcome.containerId, 'devbox --version'), '0.1.0');
    assert.match(await execIn(outcome.containerId, 'devbox --help'), /devcontainer/);
    // Its dependencies load: it talks to the engine through the socket.
    const status = JSON.parse(await execIn(outcome.containerId, 'devbox status -o json')) as unknown[];
    assert.ok(Array.isArray(status));
  });

  it('fails the build with a clear message in an image without Node.js', async () => {
    const dir = await workspace(
      'no-node',
      JSON.stringify({
        image: clusterImages().busybox,
        features: { './devbox': { package: './devbox.tgz' } },
      }),
    );
    const result = await devcontainer(['up', '--workspace-folder', dir, '--log-format', 'json']);
    assert.equal(upOutcome(result.stdout).outcome, 'error');
    assert.match(result.stderr, /Node\.js 20 or newer must be in the image/);
  });

  it('the Template, with its options applied, starts a container with devbox installed', async () => {
    const options = {
      imageVariant: '20-bookworm',
      workload: 'shop-api',
      namespace: 'shop',
      devboxFeature: './devbox',
    };
    const dir = join(work, `template-${suffix()}`);
    folders.push(dir);
    await fs.cp(templateDir, dir, { recursive: true });
    await fs.rm(join(dir, 'devcontainer-template.json'));
    const configPath = join(dir, '.devcontainer', 'devcontainer.json');
    await fs.writeFile(configPath, applyOptions(await fs.readFile(configPath, 'utf8'), options));
    await fs.cp(featureDir, join(dir, '.devcontainer', 'devbox'), { recursive: true });
    await fs.copyFile(tarball, join(dir, '.devcontainer', 'devbox', 'devbox.tgz'));
    const config = parseJsonc(await fs.readFile(configPath, 'utf8'), configPath).value as Record<string, any>;
    assert.equal(config.image, 'mcr.microsoft.com/devcontainers/javascript-node:1-20-bookworm');
    // No registry here: the base image and the docker-outside-of-docker Feature are swapped for local stand-ins.
    const features = { ...config.features, './devbox': { package: './devbox.tgz' } };
    delete features['ghcr.io/devcontainers/features/docker-outside-of-docker:1'];
    const override = join(work, 'template-override.json');
    await fs.writeFile(override, JSON.stringify({ ...config, image, features }));
    const home = join(work, 'home');
    await fs.mkdir(join(home, '.kube'), { recursive: true });
    await fs.writeFile(join(home, '.kube', 'config'), 'apiVersion: v1\nkind: Config\n');

    const result = await devcontainer(
      ['up', '--workspace-folder', dir, '--override-config', override, '--log-format', 'json'],
      { env: { HOME: home } },
    );
    const outcome = upOutcome(result.stdout);
    assert.equal(outcome.outcome, 'success', result.stderr.slice(-3000));
    containers.push(outcome.containerId);
    assert.equal(outcome.remoteUser, 'node');
    const env = await execIn(outcome.containerId, 'env');
    assert.match(env, /^DEVBOX_WORKLOAD=shop-api$/m);
    assert.match(env, /^DEVBOX_NAMESPACE=shop$/m);
    assert.equal(await execIn(outcome.containerId, 'su node -c "devbox --version"'), '0.1.0');
    assert.equal(
      await execIn(outcome.containerId, 'cat /home/node/.kube/config | head -1'),
      'apiVersion: v1',
    );
  });
});
