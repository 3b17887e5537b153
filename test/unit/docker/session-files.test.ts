import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import tar from 'tar-stream';
import type { DockerClient, ExecOptions, ExecResult } from '../../../src/docker/client.js';
import { filesTar, stagedPath, tarName, updateFiles } from '../../../src/docker/session-files.js';
import { isDevboxError } from '../../../src/util/errors.js';

interface Entry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  content: string;
}

async function entries(stream: Readable): Promise<Entry[]> {
  const extract = tar.extract();
  const out: Entry[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      const h = entry.header;
      out.push({
        name: h.name,
        type: h.type ?? '',
        mode: h.mode ?? 0,
        uid: h.uid ?? 0,
        gid: h.gid ?? 0,
        content: Buffer.concat(chunks).toString(),
      });
    }
  })();
  for await (const chunk of stream) extract.write(chunk);
  extract.end(undefined);
  await done;
  return out;
}

describe('filesTar', () => {
  it('writes only file entries relative to /, with modes and owners; no directory entries to clobber existing ones', async () => {
    const list = await entries(
      filesTar([
        { path: '/etc/config/app.yaml', content: 'a: 1\n' },
        {
          path: '/var/run/secrets/kubernetes.io/serviceaccount/token',
          content: Buffer.from('tok'),
          mode: 0o600,
          uid: 1000,
          gid: 2000,
        },
      ]),
    );
    assert.deepEqual(list, [
      { name: 'etc/config/app.yaml', type: 'file', mode: 0o644, uid: 0, gid: 0, content: 'a: 1\n' },
      {
        name: 'var/run/secrets/kubernetes.io/serviceaccount/token',
        type: 'file',
        mode: 0o600,
        uid: 1000,
        gid: 2000,
        content: 'tok',
      },
    ]);
  });

  it('refuses relative, escaping and directory paths', () => {
    for (const bad of ['etc/x', '/etc/../x', '/', '/etc/', '/a//b', '/a/./b'])
      assert.throws(
        () => tarName(bad),
        (err) => isDevboxError(err, 'BAD_INPUT'),
        bad,
      );
    assert.equal(tarName('/a/b.txt'), 'a/b.txt');
  });

  it('stages beside the target so the rename stays on one file system', () => {
    assert.equal(stagedPath('/etc/app/config.yaml'), '/etc/app/.config.yaml.devbox-new');
  });
});

/** Records the calls updateFiles makes; the container has the given programs. */
function fakeEngine(programs: string[]) {
  const calls: string[] = [];
  const archives: Entry[][] = [];
  const client = {
    async exec(id: string, cmd: string[], options: ExecOptions = {}): Promise<ExecResult> {
      calls.push(`exec ${id} ${options.user ?? ''} ${cmd.join(' ')}`);
      if (!programs.includes(cmd[0] ?? ''))
        return { exitCode: 126, stdout: `exec: "${cmd[0]}": executable file not found in $PATH`, stderr: '' };
      return { exitCode: 0, stdout: '', stderr: '' };
    },
    async putArchive(id: string, path: string, stream: Readable): Promise<void> {
      calls.push(`put ${id} ${path}`);
      archives.push(await entries(stream));
    },
  };
  return { client: client as unknown as DockerClient, calls, archives };
}

describe('updateFiles', () => {
  const files = [
    { path: '/etc/app/a.yaml', content: 'new a' },
    { path: '/etc/app/b.yaml', content: 'new b', mode: 0o640, gid: 1000 },
  ];

  it('stages each file and renames it over the target as root when the image has mv', async () => {
    const engine = fakeEngine(['mv', 'node']);
    assert.deepEqual(await updateFiles(engine.client, 'c1', files), { atomic: true, files: 2 });
    assert.deepEqual(engine.calls, [
      'exec c1 0 mv --help',
      'put c1 /',
      'exec c1 0 mv -f /etc/app/.a.yaml.devbox-new /etc/app/a.yaml',
      'exec c1 0 mv -f /etc/app/.b.yaml.devbox-new /etc/app/b.yaml',
    ]);
    assert.deepEqual(
      engine.archives[0]?.map((e) => [e.name, e.mode, e.gid, e.content]),
      [
        ['etc/app/.a.yaml.devbox-new', 0o644, 0, 'new a'],
        ['etc/app/.b.yaml.devbox-new', 0o640, 1000, 'new b'],
      ],
    );
  });

  it('renames with node where there is no mv (devbox’s own images)', async () => {
    const engine = fakeEngine(['node']);
    assert.deepEqual(await updateFiles(engine.client, 'c1', files.slice(0, 1)), { atomic: true, files: 1 });
    assert.deepEqual(engine.calls, [
      'exec c1 0 mv --help',
      'exec c1 0 node --version',
      'put c1 /',
      'exec c1 0 node -e require("fs").renameSync(process.argv[1], process.argv[2]) /etc/app/.a.yaml.devbox-new /etc/app/a.yaml',
    ]);
  });

  it('overwrites in place when the image has neither, and says so', async () => {
    const engine = fakeEngine([]);
    assert.deepEqual(await updateFiles(engine.client, 'c1', files), { atomic: false, files: 2 });
    assert.deepEqual(engine.calls, ['exec c1 0 mv --help', 'exec c1 0 node --version', 'put c1 /']);
    assert.deepEqual(
      engine.archives[0]?.map((e) => e.name),
      ['etc/app/a.yaml', 'etc/app/b.yaml'],
    );
  });

  it('a failing rename is an error naming the file', async () => {
    const engine = fakeEngine(['mv', 'node']);
    let n = 0;
    (engine.client as unknown as { exec: DockerClient['exec'] }).exec = async () =>
      n++ === 0
        ? { exitCode: 0, stdout: '', stderr: '' }
        : { exitCode: 1, stdout: '', stderr: 'mv: read-only file system' };
    await assert.rejects(
      updateFiles(engine.client, 'c1', files),
      /Could not replace \/etc\/app\/a\.yaml.*read-only/,
    );
  });

  it('a tar stream is extracted at / as it is', async () => {
    const engine = fakeEngine(['mv', 'node']);
    const result = await updateFiles(engine.client, 'c1', {
      tar: filesTar([{ path: '/x/..data/k', content: 'v' }]),
    });
    assert.deepEqual(result, { atomic: false, files: 0 });
    assert.deepEqual(engine.calls, ['put c1 /']);
    assert.equal(engine.archives[0]?.[0]?.name, 'x/..data/k');
  });

  it('nothing to update, nothing done; a bad path fails before anything is sent', async () => {
    const engine = fakeEngine(['mv', 'node']);
    assert.deepEqual(await updateFiles(engine.client, 'c1', []), { atomic: true, files: 0 });
    await assert.rejects(updateFiles(engine.client, 'c1', [{ path: 'relative', content: '' }]), /absolute/);
    assert.deepEqual(engine.calls, []);
  });
});
