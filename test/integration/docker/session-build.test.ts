/**
 * `--build <dir>` against the real engine: a context filtered by
 * .dockerignore builds on top of the runtime image; a failing RUN step is
 * reported with its own output.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildDirectory } from '../../../src/docker/build-context.js';
import { ensureRuntimeImage } from '../../../src/docker/runtime-image.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { docker, runContainer } from './helpers.js';

let runtime: string;
let root: string;
const tags: string[] = [];

before(async () => {
  await docker.ping();
  runtime = (await ensureRuntimeImage(docker)).tag;
  root = await mkdtemp(join(tmpdir(), 'devbox-build-'));
});

after(async () => {
  for (const tag of tags) await docker.removeImage(tag, { force: true });
  if (root) await rm(root, { recursive: true, force: true });
});

/** Checks, inside the build, which context files arrived. */
const CHECK = `const fs = require('fs');
const want = ['/ctx/app.js', '/ctx/src/keep.log', '/ctx/docker/Dockerfile.dev'];
const unwanted = ['/ctx/secret.env', '/ctx/debug.log', '/ctx/node_modules', '/ctx/src/tmp.log'];
const missing = want.filter((p) => !fs.existsSync(p));
const present = unwanted.filter((p) => fs.existsSync(p));
if (missing.length || present.length) { console.log('missing', missing, 'present', present); process.exit(4); }
console.log('context ok');`;

describe('buildDirectory', () => {
  it('builds FROM the runtime image with a context filtered by .dockerignore', async () => {
    const dir = join(root, 'ok');
    await mkdir(join(dir, 'src'), { recursive: true });
    await mkdir(join(dir, 'node_modules', 'left-pad'), { recursive: true });
    await mkdir(join(dir, 'docker'), { recursive: true });
    await writeFile(join(dir, 'app.js'), 'console.log("built app")\n');
    await writeFile(join(dir, 'secret.env'), 'PASSWORD=x\n');
    await writeFile(join(dir, 'debug.log'), 'noise\n');
    await writeFile(join(dir, 'src', 'keep.log'), 'kept by an exception\n');
    await writeFile(join(dir, 'src', 'tmp.log'), 'noise\n');
    await writeFile(join(dir, 'node_modules', 'left-pad', 'index.js'), '\n');
    await writeFile(join(dir, 'check.js'), CHECK);
    await writeFile(
      join(dir, '.dockerignore'),
      '# local only\nsecret.env\n**/*.log\n!src/keep.log\nnode_modules/\n',
    );
    await writeFile(
      join(dir, 'docker', 'Dockerfile.dev'),
      `FROM ${runtime}\nCOPY . /ctx\nRUN ["node", "/ctx/check.js"]\nCMD ["node", "/ctx/app.js"]\n`,
    );
    const lines: string[] = [];
    const tag = 'devbox-build-itest:ok';
    tags.push(tag);
    const built = await buildDirectory(docker, dir, {
      dockerfile: 'docker/Dockerfile.dev',
      tag,
      onOutput: (line) => lines.push(line),
    });
    assert.match(built.imageId, /^sha256:[0-9a-f]{64}$/);
    assert.equal(built.tag, tag);
    assert.ok(
      lines.some((l) => l.includes('context ok')),
      lines.join('\n'),
    );
    const run = await runContainer({ image: tag });
    assert.equal(run.stdout, 'built app\n');
  });

  it('reports the failing RUN step with its output', async () => {
    const dir = join(root, 'fail');
    await mkdir(dir, { recursive: true });
    await writeFile(
      join(dir, 'Dockerfile'),
      `FROM ${runtime}\nRUN ["node", "-e", "console.log('checking the widgets'); console.error('widget missing'); process.exit(3)"]\n`,
    );
    const tag = 'devbox-build-itest:fail';
    tags.push(tag);
    await assert.rejects(buildDirectory(docker, dir, { tag }), (err) => {
      assert.ok(isDevboxError(err, 'BAD_INPUT'), String(err));
      assert.match(err.message, /failed at Step 2\/2 \(RUN/);
      assert.match(err.message, /returned a non-zero code: 3/);
      assert.match(err.hint ?? '', /checking the widgets/);
      assert.match(err.hint ?? '', /widget missing/);
      return true;
    });
  });

  it('a directory without a Dockerfile is BAD_INPUT before anything is sent', async () => {
    const dir = join(root, 'empty');
    await mkdir(dir, { recursive: true });
    await assert.rejects(buildDirectory(docker, dir), (err) => {
      assert.ok(isDevboxError(err, 'BAD_INPUT'));
      assert.match(err.message, /No Dockerfile at/);
      return true;
    });
  });
});
