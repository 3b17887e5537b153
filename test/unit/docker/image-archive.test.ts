import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import {
  digestStream,
  imageConfigJson,
  type LayerEntry,
  layerStream,
  normalizeEntryPath,
  normalizeLayer,
  planImage,
} from '../../../src/docker/image-archive.js';
import { isDevboxError } from '../../../src/util/errors.js';

interface Extracted {
  header: tar.Header;
  body: Buffer;
}

async function untar(stream: Readable): Promise<Extracted[]> {
  const extract = tar.extract();
  const out: Extracted[] = [];
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      out.push({ header: entry.header, body: Buffer.concat(chunks) });
    }
  })();
  for await (const chunk of stream) extract.write(chunk);
  extract.end(undefined);
  await done;
  return out;
}

const text = (s: string) => ({ content: Buffer.from(s) });

describe('layer normalization', () => {
  it('normalizes paths and refuses .. and the root', () => {
    assert.equal(normalizeEntryPath('/usr//local/bin/'), 'usr/local/bin');
    assert.throws(
      () => normalizeEntryPath('/'),
      (err) => isDevboxError(err, 'INTERNAL'),
    );
    assert.throws(
      () => normalizeEntryPath('../etc/passwd'),
      (err) => isDevboxError(err, 'INTERNAL'),
    );
  });

  it('adds parents, merges identical duplicates, sorts parents before children', () => {
    const entries: LayerEntry[] = [
      { type: 'file', path: '/usr/lib/x/libc.so.6', mode: 0o755, source: { hostPath: '/h/libc', size: 1 } },
      { type: 'symlink', path: '/lib', target: 'usr/lib' },
      { type: 'file', path: '/usr/lib/x/libc.so.6', mode: 0o755, source: { hostPath: '/h/libc', size: 1 } },
      { type: 'directory', path: '/tmp', mode: 0o1777 },
      { type: 'file', path: '/usr-x', source: text('a') },
    ];
    const paths = normalizeLayer(entries).map((e) => `${e.type[0]} ${e.path}`);
    // Plain byte order ('-' sorts before '/'): still every parent before its children.
    assert.deepEqual(paths, [
      's lib',
      'd tmp',
      'd usr',
      'f usr-x',
      'd usr/lib',
      'd usr/lib/x',
      'f usr/lib/x/libc.so.6',
    ]);
  });

  it('refuses two different entries at one path and entries under a symlink', () => {
    assert.throws(
      () =>
        normalizeLayer([
          { type: 'file', path: '/a', source: text('1') },
          { type: 'file', path: '/a', source: text('2') },
        ]),
      /Two different image entries/,
    );
    assert.throws(
      () =>
        normalizeLayer([
          { type: 'symlink', path: '/lib', target: 'usr/lib' },
          { type: 'file', path: '/lib/libc.so.6', source: text('x') },
        ]),
      /not a directory/,
    );
  });
});

describe('layer tar', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'devbox-layer-'));
    await writeFile(join(dir, 'bin'), 'binary bytes');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const layer = (): LayerEntry[] =>
    normalizeLayer([
      {
        type: 'file',
        path: '/usr/local/bin/node',
        mode: 0o755,
        source: { hostPath: join(dir, 'bin'), size: 12 },
      },
      { type: 'file', path: '/etc/passwd', source: text('root:x:0:0::/root:/bin/sh\n') },
      { type: 'directory', path: '/home/node', uid: 1000, gid: 1000 },
      { type: 'directory', path: '/tmp', mode: 0o1777 },
      { type: 'symlink', path: '/lib64', target: 'usr/lib64' },
    ]);

  it('writes fixed headers: epoch mtime, no owner names, modes and owners as given', async () => {
    const entries = await untar(layerStream(layer()));
    for (const { header } of entries) {
      assert.equal(header.mtime.getTime(), 0, header.name);
      assert.equal(header.uname, '');
      assert.equal(header.gname, '');
    }
    const byName = new Map(entries.map((e) => [e.header.name, e]));
    assert.equal(byName.get('usr/local/bin/node')?.header.mode, 0o755);
    assert.equal(byName.get('usr/local/bin/node')?.body.toString(), 'binary bytes');
    assert.equal(byName.get('tmp/')?.header.mode, 0o1777);
    assert.equal(byName.get('home/node/')?.header.uid, 1000);
    assert.equal(byName.get('lib64')?.header.linkname, 'usr/lib64');
    assert.deepEqual(
      entries.map((e) => e.header.name),
      [
        'etc/',
        'etc/passwd',
        'home/',
        'home/node/',
        'lib64',
        'tmp/',
        'usr/',
        'usr/local/',
        'usr/local/bin/',
        'usr/local/bin/node',
      ],
    );
  });

  it('is byte-for-byte reproducible', async () => {
    const a = await digestStream(layerStream(layer()));
    const b = await digestStream(layerStream(layer()));
    assert.deepEqual(a, b);
    const changed = normalizeLayer([
      ...layer().filter((e) => e.path !== 'etc/passwd'),
      { type: 'file', path: '/etc/passwd', source: text('other\n') },
    ]);
    assert.notEqual((await digestStream(layerStream(changed))).digest, a.digest);
  });

  it('fails rather than writes a corrupt tar when a host file changed size', async () => {
    const wrong = normalizeLayer([
      { type: 'file', path: '/x', source: { hostPath: join(dir, 'bin'), size: 99 } },
    ]);
    await assert.rejects(digestStream(layerStream(wrong)));
  });
});

describe('docker-archive', () => {
  it('holds manifest.json, the config named by its digest and the layer named by its diff ID', async () => {
    const plan = await planImage(
      [{ type: 'file', path: '/hello', mode: 0o755, source: text('hi') }],
      { user: '1000:1000', cmd: ['node'], env: ['PATH=/usr/bin'], labels: { b: '2', a: '1' } },
      'amd64',
    );
    const files = new Map((await untar(plan.archive(['devbox-test:1']))).map((e) => [e.header.name, e.body]));
    const manifest = JSON.parse(files.get('manifest.json')!.toString());
    const configHex = plan.imageId.slice('sha256:'.length);
    const layerHex = plan.diffId.slice('sha256:'.length);
    assert.deepEqual(manifest, [
      { Config: `${configHex}.json`, RepoTags: ['devbox-test:1'], Layers: [`${layerHex}/layer.tar`] },
    ]);

    const config = files.get(`${configHex}.json`)!;
    assert.equal(createHash('sha256').update(config).digest('hex'), configHex, 'image ID = sha256(config)');
    const layerTar = files.get(`${layerHex}/layer.tar`)!;
    assert.equal(layerTar.length, plan.layerSize);
    assert.equal(createHash('sha256').update(layerTar).digest('hex'), layerHex, 'diff ID = sha256(layer)');

    const parsed = JSON.parse(config.toString());
    assert.equal(parsed.os, 'linux');
    assert.equal(parsed.architecture, 'amd64');
    assert.deepEqual(parsed.rootfs, { type: 'layers', diff_ids: [plan.diffId] });
    assert.equal(parsed.config.User, '1000:1000');
    assert.deepEqual(Object.keys(parsed.config.Labels), ['a', 'b'], 'labels sorted');
  });

  it('gives the same image ID for the same inputs, a different one for a different config', async () => {
    const files: LayerEntry[] = [{ type: 'file', path: '/a', source: text('a') }];
    const one = await planImage(files, { cmd: ['sh'] }, 'amd64');
    const two = await planImage([...files].reverse(), { cmd: ['sh'] }, 'amd64');
    const other = await planImage(files, { cmd: ['bash'] }, 'amd64');
    assert.equal(one.imageId, two.imageId);
    assert.notEqual(one.imageId, other.imageId);
    assert.equal(one.diffId, other.diffId);
  });

  it('writes configs whose bytes do not depend on label insertion order', () => {
    const a = imageConfigJson({ labels: { x: '1', y: '2' } }, 'sha256:00', 'amd64');
    const b = imageConfigJson({ labels: { y: '2', x: '1' } }, 'sha256:00', 'amd64');
    assert.ok(a.equals(b));
  });
});
