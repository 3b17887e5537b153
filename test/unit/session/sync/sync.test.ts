import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { specFromInspect } from '../../../../src/docker/client.js';
import {
  containerPath,
  diffSnapshots,
  type SnapshotEntry,
  takeSnapshot,
} from '../../../../src/session/sync/changes.js';
import { pathsToCarry } from '../../../../src/session/sync/replace.js';
import {
  containerPathProblem,
  resolveSyncRules,
  type SyncRule,
  splitSyncFlag,
} from '../../../../src/session/sync/rules.js';
import { changesTar, deletionPaths } from '../../../../src/session/sync/transfer.js';
import { isDevboxError } from '../../../../src/util/errors.js';

const file = (size: number, mtimeMs = 1, mode = 0o644): SnapshotEntry => ({
  type: 'file',
  size,
  mtimeMs,
  mode,
});
const dir = (mode = 0o755): SnapshotEntry => ({ type: 'directory', size: 0, mtimeMs: 9, mode });

describe('diffSnapshots', () => {
  it('sends everything the first time', () => {
    const after = new Map([
      ['a', dir()],
      ['a/x.js', file(1)],
    ]);
    assert.deepEqual(diffSnapshots(new Map(), after), { upserts: ['a', 'a/x.js'], deletions: [] });
  });

  it('sends only changed files: size, time or mode; a directory whose time changed is not resent', () => {
    const before = new Map([
      ['a', dir()],
      ['a/same', file(1)],
      ['a/size', file(1)],
      ['a/time', file(1, 1)],
      ['a/mode', file(1, 1, 0o644)],
    ]);
    const after = new Map([
      ['a', { ...dir(), mtimeMs: 99 }],
      ['a/same', file(1)],
      ['a/size', file(2)],
      ['a/time', file(1, 2)],
      ['a/mode', file(1, 1, 0o755)],
    ]);
    assert.deepEqual(diffSnapshots(before, after), {
      upserts: ['a/mode', 'a/size', 'a/time'],
      deletions: [],
    });
  });

  it('deletes only the top of a removed subtree', () => {
    const before = new Map([
      ['keep', file(1)],
      ['gone', dir()],
      ['gone/a', file(1)],
      ['gone/b', dir()],
      ['gone/b/c', file(1)],
      ['old.js', file(1)],
    ]);
    const after = new Map([['keep', file(1)]]);
    assert.deepEqual(diffSnapshots(before, after), { upserts: [], deletions: ['gone', 'old.js'] });
  });

  it('removes a path whose type changed before writing it again', () => {
    const before = new Map([['x', file(1)]]);
    const after = new Map([
      ['x', dir()],
      ['x/y', file(1)],
    ]);
    assert.deepEqual(diffSnapshots(before, after), { upserts: ['x', 'x/y'], deletions: ['x'] });
  });

  it('notices a symbolic link pointed elsewhere', () => {
    const link = (to: string): SnapshotEntry => ({
      type: 'symlink',
      size: 0,
      mtimeMs: 1,
      mode: 0o777,
      linkname: to,
    });
    assert.deepEqual(diffSnapshots(new Map([['l', link('a')]]), new Map([['l', link('b')]])).upserts, ['l']);
  });
});

describe('containerPath', () => {
  it('joins a rule path to the container target; a file rule is the target itself', () => {
    assert.equal(containerPath({ container: '/app/src' }, 'a/b.js'), '/app/src/a/b.js');
    assert.equal(containerPath({ container: '/app/main.js' }, ''), '/app/main.js');
  });
});

describe('sync flags', () => {
  it('splits at the colon that starts the absolute container path', () => {
    assert.deepEqual(splitSyncFlag('src:/app/src'), { local: 'src', container: '/app/src' });
    assert.deepEqual(splitSyncFlag('C:dir:/app'), { local: 'C:dir', container: '/app' });
    assert.throws(
      () => splitSyncFlag('src'),
      (e) => isDevboxError(e, 'BAD_INPUT') && /LOCAL:CONTAINER/.test(e.message),
    );
    assert.throws(
      () => splitSyncFlag('src:app'),
      (e) => isDevboxError(e, 'BAD_INPUT'),
    );
  });

  it('refuses container paths that are the root or not normalized', () => {
    assert.equal(containerPathProblem('/app/src'), undefined);
    assert.equal(containerPathProblem('/app/src/'), undefined);
    assert.match(containerPathProblem('/') ?? '', /root/);
    assert.match(containerPathProblem('/app/../etc') ?? '', /normalized/);
    assert.match(containerPathProblem('/app//src') ?? '', /normalized/);
  });
});

describe('resolveSyncRules and takeSnapshot', () => {
  let project = '';
  let outside = '';
  before(async () => {
    project = await mkdtemp(join(tmpdir(), 'devbox-sync-'));
    outside = await mkdtemp(join(tmpdir(), 'devbox-sync-outside-'));
    await mkdir(join(project, 'src', 'lib'), { recursive: true });
    await mkdir(join(project, 'src', 'node_modules', 'dep'), { recursive: true });
    await mkdir(join(project, 'src', 'logs'), { recursive: true });
    await writeFile(join(project, 'src', 'index.js'), 'main');
    await writeFile(join(project, 'src', 'lib', 'a.js'), 'a');
    await writeFile(join(project, 'src', 'lib', 'a.test.js'), 't');
    await writeFile(join(project, 'src', 'node_modules', 'dep', 'i.js'), 'dep');
    await writeFile(join(project, 'src', 'logs', 'x.log'), 'log');
    await writeFile(join(project, 'src', 'logs', 'keep.log'), 'keep');
    await writeFile(join(project, 'package.json'), '{}');
    // Patterns are relative to the directory that holds the .dockerignore (the project here).
    await writeFile(
      join(project, '.dockerignore'),
      'src/node_modules\n**/*.test.js\nsrc/logs\n!src/logs/keep.log\n',
    );
    await symlink(outside, join(project, 'escape'));
  });
  after(async () => {
    await rm(project, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('resolves flags against the project', async () => {
    const rules = await resolveSyncRules(['src:/app/src', 'package.json:/app/package.json'], project);
    assert.equal(rules.length, 2);
    assert.equal(rules[0]?.directory, true);
    assert.equal(rules[0]?.container, '/app/src');
    assert.equal(rules[1]?.directory, false);
  });

  it('names every bad flag at once: missing, outside (also through a link), relative target', async () => {
    await assert.rejects(
      resolveSyncRules(['nope:/app', `${outside}:/app`, 'escape:/app', 'src:app', 'src:/'], project),
      (err) => {
        assert.ok(isDevboxError(err, 'BAD_INPUT'));
        assert.match(err.message, /nope:\/app: .*does not exist/);
        assert.match(err.message, new RegExp(`${outside}:/app: .* is outside the project`));
        assert.match(err.message, /escape:\/app: .* is outside the project/);
        assert.match(err.message, /src:app: expected LOCAL:CONTAINER/);
        assert.match(err.message, /src:\/: .*root/);
        return true;
      },
    );
  });

  it('honours the .dockerignore, exceptions included', async () => {
    const [rule] = await resolveSyncRules(['src:/app/src'], project);
    const snapshot = await takeSnapshot(rule as SyncRule, project);
    assert.deepEqual([...snapshot.keys()].sort(), ['index.js', 'lib', 'lib/a.js', 'logs/keep.log']);
  });

  it('sees an edit and a deletion as a change set', async () => {
    const [rule] = (await resolveSyncRules(['src:/app/src'], project)) as SyncRule[];
    const first = await takeSnapshot(rule as SyncRule, project);
    await writeFile(join(project, 'src', 'index.js'), 'main v2');
    await utimes(join(project, 'src', 'index.js'), new Date(), new Date(Date.now() + 5000));
    await rm(join(project, 'src', 'lib'), { recursive: true });
    const second = await takeSnapshot(rule as SyncRule, project);
    const changes = diffSnapshots(first, second);
    assert.deepEqual(changes, { upserts: ['index.js'], deletions: ['lib'] });
    const sets = [{ rule: rule as SyncRule, snapshot: second, changes }];
    assert.deepEqual(deletionPaths(sets), ['/app/src/lib']);
    const entries: { name: string; body: string }[] = [];
    const extract = tar.extract();
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c) => chunks.push(c as Buffer));
      stream.on('end', () => {
        entries.push({ name: header.name, body: Buffer.concat(chunks).toString() });
        next();
      });
    });
    const done = new Promise<void>((resolve) => extract.on('finish', () => resolve()));
    changesTar(sets).pipe(extract);
    await done;
    assert.deepEqual(entries, [{ name: 'app/src/index.js', body: 'main v2' }]);
  });
});

describe('pathsToCarry', () => {
  it('carries the top of what the container added, not what sync fills again', () => {
    const changes = [
      { path: '/etc', kind: 'C' as const },
      { path: '/etc/app', kind: 'A' as const },
      { path: '/etc/app/config.yaml', kind: 'A' as const },
      { path: '/app', kind: 'C' as const },
      { path: '/app/src', kind: 'A' as const },
      { path: '/app/src/x.js', kind: 'A' as const },
      { path: '/var/run/secrets', kind: 'A' as const },
      { path: '/old', kind: 'D' as const },
    ];
    assert.deepEqual(pathsToCarry(changes, ['/app/src']), ['/etc/app', '/var/run/secrets']);
  });
});

describe('specFromInspect', () => {
  const inspected = (config: Record<string, unknown>, hostConfig: Record<string, unknown> = {}) =>
    ({
      Name: '/devbox-api-svc',
      Config: { Image: 'api:dev', Labels: { 'devbox.session': 's1' }, Env: [], ...config },
      HostConfig: { NetworkMode: 'container:abc', Init: true, ...hostConfig },
    }) as unknown as Parameters<typeof specFromInspect>[0];

  it('keeps what devbox set and leaves out what the image supplied', () => {
    const spec = specFromInspect(
      inspected({
        Env: ['PATH=/usr/bin', 'DB_HOST=db', 'NODE_ENV=production'],
        Entrypoint: ['docker-entrypoint.sh'],
        Cmd: ['node', 'server.js'],
        WorkingDir: '/app',
      }),
      {
        Env: ['PATH=/usr/bin', 'NODE_ENV=production'],
        Entrypoint: ['docker-entrypoint.sh'],
        Cmd: ['node', 'server.js'],
      },
    );
    assert.deepEqual(spec, {
      name: 'devbox-api-svc',
      image: 'api:dev',
      labels: { 'devbox.session': 's1' },
      env: { DB_HOST: 'db' },
      workingDir: '/app',
      networkMode: 'container:abc',
      init: true,
    });
  });

  it('keeps a command given on the command line', () => {
    const spec = specFromInspect(inspected({ Entrypoint: ['npm'], Cmd: ['run', 'dev'] }), {
      Entrypoint: ['docker-entrypoint.sh'],
      Cmd: ['node'],
    });
    assert.deepEqual([spec.entrypoint, spec.cmd], [['npm'], ['run', 'dev']]);
  });

  it('keeps bind mounts', () => {
    const spec = specFromInspect(
      inspected({}, { Mounts: [{ Type: 'bind', Source: '/h', Target: '/c', ReadOnly: true }] }),
    );
    assert.deepEqual(spec.mounts, [{ type: 'bind', source: '/h', target: '/c', readOnly: true }]);
  });
});
