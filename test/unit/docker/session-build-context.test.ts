import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import {
  contextFilter,
  contextTar,
  defaultBuildTag,
  failingStep,
  parseDockerignore,
  planBuildContext,
} from '../../../src/docker/build-context.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('parseDockerignore', () => {
  it('drops comments and blanks, trims, cleans paths and keeps exceptions', () => {
    assert.deepEqual(
      parseDockerignore('# comment\n\n  node_modules/  \n/build\n!  keep.log\n./a/../b\n**/*.tmp\r\n!\n'),
      ['node_modules', 'build', '!keep.log', 'b', '**/*.tmp'],
    );
  });
});

describe('contextFilter', () => {
  const excluded = (patterns: string, paths: string[], always: string[] = []) => {
    const filter = contextFilter(parseDockerignore(patterns), always);
    return paths.filter((p) => filter.excludes(p));
  };

  it('matches like the engine: *, **, directory prefixes, anchoring and ! exceptions in order', () => {
    assert.deepEqual(
      excluded('*.log\n!keep.log', ['a.log', 'keep.log', 'dir/a.log', 'a.txt']),
      ['a.log'],
      'a single * does not cross directories',
    );
    assert.deepEqual(excluded('**/*.log', ['a.log', 'x/y/a.log', 'a.txt']), ['a.log', 'x/y/a.log']);
    assert.deepEqual(excluded('node_modules', ['node_modules', 'node_modules/a/b.js', 'src/node_modules']), [
      'node_modules',
      'node_modules/a/b.js',
    ]);
    assert.deepEqual(excluded('docs\n!docs/README.md', ['docs/a.md', 'docs/README.md']), ['docs/a.md']);
    assert.deepEqual(
      excluded('!a.txt\n*.txt', ['a.txt', 'b.txt']),
      ['a.txt', 'b.txt'],
      'the last match wins',
    );
    assert.deepEqual(excluded('src/?.js', ['src/a.js', 'src/ab.js']), ['src/a.js']);
  });

  it('always sends the Dockerfile and .dockerignore', () => {
    assert.deepEqual(
      excluded('*', ['Dockerfile', '.dockerignore', 'app.js'], ['Dockerfile', '.dockerignore']),
      ['app.js'],
    );
  });

  it('walks an excluded directory only when an exception names something inside it', () => {
    const filter = contextFilter(parseDockerignore('node_modules\nbuild\n!build/keep'));
    assert.equal(filter.mustWalk('node_modules'), false);
    assert.equal(filter.mustWalk('build'), true);
    assert.equal(filter.mustWalk('buil'), false);
  });
});

describe('planBuildContext and contextTar', () => {
  const IGNORE = 'node_modules\n*.env\nbuild\n!build/keep.txt\nDockerfile\n';
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'devbox-context-'));
    await mkdir(join(dir, 'src'));
    await mkdir(join(dir, 'node_modules', 'pkg'), { recursive: true });
    await mkdir(join(dir, 'build'));
    await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\n');
    await writeFile(join(dir, '.dockerignore'), IGNORE);
    await writeFile(join(dir, 'src', 'main.js'), 'console.log(1)\n', { mode: 0o755 });
    await writeFile(join(dir, 'node_modules', 'pkg', 'index.js'), '\n');
    await writeFile(join(dir, 'local.env'), 'SECRET=1\n');
    await writeFile(join(dir, 'build', 'keep.txt'), 'kept\n');
    await writeFile(join(dir, 'build', 'out.bin'), 'x');
    await symlink('src/main.js', join(dir, 'main-link.js'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lists what the engine gets, sorted, the Dockerfile included even when ignored', async () => {
    const context = await planBuildContext(dir);
    assert.deepEqual(
      context.entries.map((e) => `${e.type} ${e.name}`),
      [
        'file .dockerignore',
        'file Dockerfile',
        'file build/keep.txt',
        'symlink main-link.js',
        'directory src',
        'file src/main.js',
      ],
    );
    assert.equal(context.dockerfile, 'Dockerfile');
    assert.equal(context.entries.find((e) => e.name === 'main-link.js')?.linkname, 'src/main.js');
    assert.equal(context.entries.find((e) => e.name === 'src/main.js')?.mode, 0o755);
    assert.equal(context.bytes, IGNORE.length + 13 + 5 + 15);
  });

  it('a Dockerfile outside the directory travels under a generated name', async () => {
    const outside = join(dir, '..', `Dockerfile.${process.pid}`);
    await writeFile(outside, 'FROM scratch\n');
    try {
      const context = await planBuildContext(dir, { dockerfile: outside });
      assert.match(context.dockerfile, /^\.dockerfile\.[0-9a-f]{20}$/);
      assert.equal(context.entries.at(-1)?.name, context.dockerfile);
    } finally {
      await rm(outside);
    }
  });

  it('streams the entries as a tar owned by root', async () => {
    const context = await planBuildContext(dir);
    const extract = tar.extract();
    const seen: string[] = [];
    const done = (async () => {
      for await (const entry of extract) {
        let size = 0;
        for await (const chunk of entry) size += (chunk as Buffer).length;
        seen.push(
          `${entry.header.type} ${entry.header.name} ${entry.header.uid}:${entry.header.gid} ${size}`,
        );
      }
    })();
    for await (const chunk of contextTar(context)) extract.write(chunk);
    extract.end(undefined);
    await done;
    assert.deepEqual(seen, [
      `file .dockerignore 0:0 ${IGNORE.length}`,
      'file Dockerfile 0:0 13',
      'file build/keep.txt 0:0 5',
      'symlink main-link.js 0:0 0',
      'directory src 0:0 0',
      'file src/main.js 0:0 15',
    ]);
  });

  it('a missing directory or Dockerfile is BAD_INPUT', async () => {
    await assert.rejects(planBuildContext(join(dir, 'nope')), (err) => isDevboxError(err, 'BAD_INPUT'));
    await assert.rejects(
      planBuildContext(dir, { dockerfile: 'Dockerfile.dev' }),
      /No Dockerfile at .*Dockerfile\.dev/,
    );
  });
});

describe('failingStep and defaultBuildTag', () => {
  it('finds the last step and its output, without the engine’s bookkeeping lines', () => {
    const lines = [
      'Step 1/2 : FROM devbox-runtime:1',
      ' ---> 1234',
      'Step 2/2 : RUN ["node", "-e", "process.exit(3)"]',
      ' ---> Running in abcd',
      'checking',
      '',
      'Removing intermediate container abcd',
    ];
    assert.deepEqual(failingStep(lines), {
      title: 'Step 2/2 (RUN ["node", "-e", "process.exit(3)"])',
      output: 'checking',
    });
    assert.deepEqual(failingStep(['just text']), { output: 'just text' });
    assert.deepEqual(failingStep([]), {});
  });

  it('tags after the directory name', () => {
    assert.equal(defaultBuildTag('/home/me/My App'), 'devbox-build-my-app:latest');
    assert.equal(defaultBuildTag('/'), 'devbox-build-context:latest');
  });
});
