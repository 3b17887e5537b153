import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { packPath } from '../../../src/agent/files.js';
import {
  type FilesSource,
  layoutTar,
  mountContentsTar,
  readTarEntries,
} from '../../../src/kube/volumes/copy.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { type TarAgentEntry, tarAgent } from '../../support/agent-tar.js';
import { Fixtures } from '../tunnel/harness.js';

/** name → [type, octal mode, content] */
function summary(entries: Awaited<ReturnType<typeof readTarEntries>>) {
  return Object.fromEntries(
    entries.map((e) => [
      e.path,
      [e.type, (e.mode & 0o7777).toString(8), e.content?.toString() ?? e.linkname ?? ''],
    ]),
  );
}

/** The agent's own packer, without a tunnel. */
const localAgent: FilesSource = {
  files: async (path) => (await packPath(path)) as unknown as Readable,
};

describe('copying mount contents', () => {
  const fx = new Fixtures();
  let dir = '';
  afterEach(async () => {
    await fx.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A pod directory for a mount at `mountPath`, with an absolute link inside the mount. */
  async function tree(mountPath = '/data'): Promise<string> {
    dir = await mkdtemp(join(tmpdir(), 'devbox-copy-'));
    const root = join(dir, 'devbox-pod', 'data');
    await mkdir(join(root, 'sub'), { recursive: true });
    await writeFile(join(root, 'a.txt'), 'alpha');
    await chmod(join(root, 'a.txt'), 0o640);
    await writeFile(join(root, 'sub', 'b.bin'), Buffer.alloc(200_000, 7));
    await symlink(`${mountPath}/a.txt`, join(root, 'abs-link'));
    return root;
  }

  it('stops at a pod file that is a symlink out of the mount, read through a real agent', async () => {
    const root = await tree();
    await symlink('/home/dev/src', join(root, 'sub', 'escape'));
    const agent = await fx.agent();
    const client = await fx.client(agent);
    const copy = await mountContentsTar(client, { agentPath: root, mountPath: '/data', readOnly: false });
    await assert.rejects(readTarEntries(copy), (err) => {
      assert.ok(isDevboxError(err, 'PROTOCOL'), String(err));
      assert.match(
        err.message,
        /"sub\/escape".*\/data: it is a symlink to "\/home\/dev\/src", outside the mount/,
      );
      return true;
    });
  });

  it('re-roots a directory at the mount path through a real agent, with modes and links kept', async () => {
    const root = await tree('/var/lib/app/data');
    const agent = await fx.agent();
    const client = await fx.client(agent);
    const tarStream = await mountContentsTar(client, {
      agentPath: root,
      mountPath: '/var/lib/app/data',
      readOnly: false,
      kind: 'directory',
      root: { mode: 0o777, uid: 0, gid: 0 },
    });
    const entries = await readTarEntries(tarStream);
    const s = summary(entries);
    assert.deepEqual(s['/var/lib/app/data'], ['directory', '777', '']);
    assert.deepEqual(s['/var/lib/app/data/a.txt'], ['file', '640', 'alpha']);
    assert.equal(s['/var/lib/app/data/sub']?.[0], 'directory');
    // Absolute links keep pointing where the app sees them.
    assert.deepEqual(s['/var/lib/app/data/abs-link'], ['symlink', '777', '/var/lib/app/data/a.txt']);
    assert.equal(entries.find((e) => e.path === '/var/lib/app/data/sub/b.bin')?.content?.length, 200_000);
    assert.deepEqual(Object.keys(s).sort(), [
      '/var/lib/app/data',
      '/var/lib/app/data/a.txt',
      '/var/lib/app/data/abs-link',
      '/var/lib/app/data/sub',
      '/var/lib/app/data/sub/b.bin',
    ]);
  });

  it('clears write bits for a read-only mount unless told otherwise', async () => {
    const root = await tree();
    const ro = summary(
      await readTarEntries(
        await mountContentsTar(localAgent, { agentPath: root, mountPath: '/data', readOnly: true }),
      ),
    );
    assert.deepEqual(ro['/data/a.txt'], ['file', '440', 'alpha']);
    const kept = summary(
      await readTarEntries(
        await mountContentsTar(
          localAgent,
          { agentPath: root, mountPath: '/data', readOnly: true },
          { stripWriteBits: false },
        ),
      ),
    );
    assert.deepEqual(kept['/data/a.txt'], ['file', '640', 'alpha']);
  });

  it('puts a single-file mount at the mount path itself', async () => {
    const root = await tree();
    const s = summary(
      await readTarEntries(
        await mountContentsTar(localAgent, {
          agentPath: join(root, 'a.txt'),
          mountPath: '/etc/app.conf',
          readOnly: false,
        }),
      ),
    );
    assert.deepEqual(s, { '/etc/app.conf': ['file', '640', 'alpha'] });
  });

  it('takes a directory holding one file named like itself for a directory', async () => {
    dir = await mkdtemp(join(tmpdir(), 'devbox-copy-'));
    const root = join(dir, 'state');
    await mkdir(root);
    await writeFile(join(root, 'state'), 'x');
    await writeFile(join(root, 'other'), 'y');
    const s = summary(
      await readTarEntries(
        await mountContentsTar(localAgent, { agentPath: root, mountPath: '/state', readOnly: false }),
      ),
    );
    assert.deepEqual(Object.keys(s).sort(), ['/state/other', '/state/state']);
  });

  it('gives an empty emptyDir its mount point', async () => {
    dir = await mkdtemp(join(tmpdir(), 'devbox-copy-'));
    const s = summary(
      await readTarEntries(
        await mountContentsTar(localAgent, {
          agentPath: dir,
          mountPath: '/cache',
          readOnly: false,
          kind: 'directory',
          root: { mode: 0o2777, uid: 0, gid: 1500 },
        }),
      ),
    );
    assert.deepEqual(s, { '/cache': ['directory', '2777', ''] });
  });

  it('uses the root entry of an agent that names the directory itself', async () => {
    const { default: tar } = await import('tar-stream');
    const pack = tar.pack();
    pack.entry({ name: './', type: 'directory', mode: 0o750, uid: 10, gid: 20 });
    pack.entry({ name: './f', type: 'file', mode: 0o600 }, 'content');
    pack.finalize();
    const source: FilesSource = { files: async () => Readable.from(pack) };
    const entries = await readTarEntries(
      await mountContentsTar(source, { agentPath: '/devbox-pod/x', mountPath: '/x', readOnly: false }),
    );
    assert.deepEqual(summary(entries), {
      '/x': ['directory', '750', ''],
      '/x/f': ['file', '600', 'content'],
    });
    assert.equal(entries[0]?.uid, 10);
    assert.equal(entries[0]?.gid, 20);
  });

  it('names the mount when the agent does not see it', async () => {
    const agent = await fx.agent({ filesRoot: '/devbox-pod' });
    const client = await fx.client(agent);
    await assert.rejects(
      mountContentsTar(client, { agentPath: '/devbox-pod/nowhere', mountPath: '/nowhere', readOnly: false }),
      (err) =>
        isDevboxError(err, 'NOT_FOUND') && /\/devbox-pod\/nowhere \(mount \/nowhere\)/.test(err.message),
    );
  });

  it('refuses a mount path that is not below /', async () => {
    await assert.rejects(
      mountContentsTar(localAgent, { agentPath: '/x', mountPath: 'relative', readOnly: false }),
      (err) => isDevboxError(err, 'BAD_INPUT'),
    );
    await assert.rejects(
      mountContentsTar(localAgent, { agentPath: '/x', mountPath: '/', readOnly: false }),
      (err) => isDevboxError(err, 'BAD_INPUT'),
    );
  });

  it('packs a generated layout with directory and file modes and owners', async () => {
    const base = { volume: 'v', mountPath: '/etc/app', readOnly: true, live: true, secret: false };
    const entries = await readTarEntries(
      layoutTar({
        directories: [
          { path: '/etc/app', mode: 0o3777, uid: 0, gid: 2000, volume: 'v', mountPath: '/etc/app' },
          { path: '/etc/app/db', mode: 0o2755, uid: 0, gid: 2000, volume: 'v', mountPath: '/etc/app' },
        ],
        files: [
          {
            ...base,
            path: '/etc/app/db/password',
            content: Buffer.from('pw'),
            mode: 0o440,
            uid: 0,
            gid: 2000,
          },
          { ...base, path: '/etc/app/token', content: Buffer.from('jwt'), mode: 0o640, uid: 1000, gid: 2000 },
        ],
      }),
    );
    assert.deepEqual(
      entries.map((e) => [e.path, e.type, e.mode.toString(8), e.uid, e.gid, e.content?.toString() ?? '']),
      [
        ['/etc/app', 'directory', '3777', 0, 2000, ''],
        ['/etc/app/db', 'directory', '2755', 0, 2000, ''],
        ['/etc/app/db/password', 'file', '440', 0, 2000, 'pw'],
        ['/etc/app/token', 'file', '640', 1000, 2000, 'jwt'],
      ],
    );
  });
});

/** Reads what the copy emits until it ends or fails: the paths written and the error, if any. */
async function copyOutcome(
  source: FilesSource,
  mountPath = '/data',
): Promise<{ paths: string[]; error?: unknown }> {
  const { default: tar } = await import('tar-stream');
  const extract = tar.extract();
  const paths: string[] = [];
  try {
    const stream = await mountContentsTar(source, {
      agentPath: '/devbox-pod/data',
      mountPath,
      readOnly: false,
    });
    stream.pipe(extract);
    stream.on('error', (err) => extract.destroy(err));
    for await (const entry of extract) {
      paths.push(`/${entry.header.name.replace(/\/$/, '')}`);
      entry.resume();
    }
    return { paths };
  } catch (error) {
    return { paths, error };
  }
}

describe('copying mount contents from a hostile agent', () => {
  const refusals: [string, TarAgentEntry[]][] = [
    ['../../etc/cron.d/evil', [['../../etc/cron.d/evil', 'file']]],
    [
      'sub/../../escape',
      [
        ['sub/', 'directory'],
        ['sub/../../escape', 'file'],
      ],
    ],
    ['/etc/passwd', [['/etc/passwd', 'file']]],
    ['abs', [['abs', 'symlink', '/home/dev/src']]],
    ['up', [['up', 'symlink', '../..']]],
    ['.//up', [['.//up', 'symlink', '..']]],
    ['.//sub/up', [['.//sub/up', 'symlink', '../..']]],
    [
      'sub/up',
      [
        ['sub/', 'directory'],
        ['sub/up', 'symlink', '../../etc'],
      ],
    ],
    [
      'inside/x',
      [
        ['inside', 'symlink', 'sub'],
        ['inside/x', 'file'],
      ],
    ],
    [
      'back',
      [
        ['self', 'symlink', '.'],
        ['back', 'symlink', 'self/..'],
      ],
    ],
    ['hard', [['hard', 'link', '../../etc/shadow']]],
    ['pipe', [['pipe', 'fifo']]],
  ];
  for (const [bad, entries] of refusals) {
    it(`refuses ${JSON.stringify(bad)}, naming it, and writes nothing outside the mount`, async () => {
      const { paths, error } = await copyOutcome(
        tarAgent([['ok.txt', 'file'], ...entries, ['after.txt', 'file']]),
      );
      assert.ok(isDevboxError(error, 'PROTOCOL'), String(error));
      assert.ok(error.message.includes(JSON.stringify(bad)), error.message);
      assert.match(error.message, /\/data/);
      for (const path of paths) assert.ok(path === '/data' || path.startsWith('/data/'), path);
      assert.ok(!paths.includes('/data/after.txt'), 'the copy stops at the refused entry');
    });
  }

  it('refuses a symlink or a directory where a single-file mount is expected', async () => {
    const stream = await mountContentsTar(tarAgent([['app.conf', 'symlink', 'other.conf']]), {
      agentPath: '/devbox-pod/etc/app.conf',
      mountPath: '/etc/app.conf',
      readOnly: false,
      kind: 'file',
    });
    await assert.rejects(readTarEntries(stream), (err) => {
      assert.ok(isDevboxError(err, 'PROTOCOL'), String(err));
      assert.match(
        err.message,
        /"app\.conf".*\/etc\/app\.conf: it is a symlink where the mount is a single file/,
      );
      return true;
    });
    const asDirectory = await mountContentsTar(
      tarAgent([
        ['./', 'directory'],
        ['x', 'file'],
      ]),
      { agentPath: '/devbox-pod/etc/app.conf', mountPath: '/etc/app.conf', readOnly: false, kind: 'file' },
    );
    await assert.rejects(readTarEntries(asDirectory), (err) => isDevboxError(err, 'PROTOCOL'));
  });

  it('keeps symlinks that point inside the mount, relative or absolute', async () => {
    const { paths, error } = await copyOutcome(
      tarAgent([
        ['a.txt', 'file'],
        ['./sub/', 'directory'],
        ['sub/rel', 'symlink', '../a.txt'],
        ['sub/abs', 'symlink', '/data/a.txt'],
        ['here', 'symlink', '.'],
        ['sub/deeper', 'symlink', './x/y'],
      ]),
    );
    assert.equal(error, undefined);
    assert.deepEqual(paths.sort(), [
      '/data/a.txt',
      '/data/here',
      '/data/sub',
      '/data/sub/abs',
      '/data/sub/deeper',
      '/data/sub/rel',
    ]);
  });
});
