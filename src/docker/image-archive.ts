import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { DevboxError } from '../util/errors.js';

/**
 * Single-layer images written as a `docker load`-able docker-archive
 * (manifest.json, `<config digest>.json`, `<diff id>/layer.tar`), with no
 * registry and no build step. Every header is fixed (mtime, owner names) and
 * entries are sorted, so the same files always give the same image ID.
 */

/** Every entry's mtime: the epoch, so that archives depend on content only. */
export const FIXED_MTIME = new Date(0);

interface Owner {
  uid?: number;
  gid?: number;
}

export interface DirectoryEntry extends Owner {
  type: 'directory';
  path: string;
  mode?: number;
}

export interface FileEntry extends Owner {
  type: 'file';
  path: string;
  mode?: number;
  /** Bytes in memory, or a host file read while streaming (its size is checked). */
  source: { content: Buffer } | { hostPath: string; size: number };
}

export interface SymlinkEntry {
  type: 'symlink';
  path: string;
  target: string;
}

export type LayerEntry = DirectoryEntry | FileEntry | SymlinkEntry;

/** The runtime part of an image config (what `docker inspect` shows under Config). */
export interface ImageConfig {
  env?: string[];
  cmd?: string[];
  entrypoint?: string[];
  user?: string;
  workingDir?: string;
  labels?: Record<string, string>;
  stopSignal?: string;
}

/** An image whose layer digest and ID are known; `archive()` streams it any number of times. */
export interface PlannedImage {
  /** `sha256:…` of the config JSON: the ID `docker images` shows after loading. */
  imageId: string;
  /** `sha256:…` of the uncompressed layer tar. */
  diffId: string;
  /** Bytes of the layer tar. */
  layerSize: number;
  config: Buffer;
  entries: LayerEntry[];
  /** A docker-archive tar stream tagged with `repoTags`. */
  archive(repoTags: string[]): Readable;
}

const ROOT_ONLY = /^\/*$/;

/** `/usr//bin/` → `usr/bin`; refuses paths that climb out of the root. */
export function normalizeEntryPath(path: string): string {
  if (ROOT_ONLY.test(path)) throw new DevboxError('INTERNAL', 'An image entry cannot be the root directory');
  if (path.split('/').includes('..')) throw new DevboxError('INTERNAL', `Image entry ${path} contains ..`);
  return posix.normalize(`/${path}`).replace(/^\/+/, '').replace(/\/+$/, '');
}

/**
 * Canonical layer: paths normalized, missing parent directories added (0755,
 * root), duplicates merged when identical, sorted by path so that a parent
 * always precedes its children.
 */
export function normalizeLayer(entries: LayerEntry[]): LayerEntry[] {
  const byPath = new Map<string, LayerEntry>();
  const add = (entry: LayerEntry) => {
    const existing = byPath.get(entry.path);
    if (!existing) {
      byPath.set(entry.path, entry);
      return;
    }
    if (sameEntry(existing, entry)) return;
    // An explicit directory wins over one implied by a child.
    if (existing.type === 'directory' && entry.type === 'directory') {
      byPath.set(entry.path, { ...existing, ...entry });
      return;
    }
    throw new DevboxError('INTERNAL', `Two different image entries for /${entry.path}`);
  };
  for (const raw of entries) {
    const entry = { ...raw, path: normalizeEntryPath(raw.path) } as LayerEntry;
    add(entry);
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const existing = byPath.get(parent);
      if (!existing) byPath.set(parent, { type: 'directory', path: parent, mode: 0o755 });
      else if (existing.type !== 'directory') {
        throw new DevboxError(
          'INTERNAL',
          `Image entry /${path} lies under /${parent}, which is not a directory`,
        );
      }
    }
  }
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function sameEntry(a: LayerEntry, b: LayerEntry): boolean {
  if (a.type !== b.type) return false;
  if (a.type === 'symlink' && b.type === 'symlink') return a.target === b.target;
  if (a.type === 'directory' && b.type === 'directory') {
    return (
      (a.mode ?? 0o755) === (b.mode ?? 0o755) &&
      (a.uid ?? 0) === (b.uid ?? 0) &&
      (a.gid ?? 0) === (b.gid ?? 0)
    );
  }
  if (a.type === 'file' && b.type === 'file') {
    const sa = a.source;
    const sb = b.source;
    const sameSource =
      'hostPath' in sa && 'hostPath' in sb
        ? sa.hostPath === sb.hostPath
        : 'content' in sa && 'content' in sb && sa.content.equals(sb.content);
    return sameSource && (a.mode ?? 0o644) === (b.mode ?? 0o644) && (a.uid ?? 0) === (b.uid ?? 0);
  }
  return false;
}

type EntryHeader = Partial<tar.Header> & { name: string };

/** Stream a tar of already-normalized entries. */
export function layerStream(entries: LayerEntry[]): Readable {
  const pack = tar.pack();
  (async () => {
    for (const entry of entries) {
      const common = { mtime: FIXED_MTIME, uname: '', gname: '' };
      if (entry.type === 'directory') {
        await addEntry(pack, {
          ...common,
          name: `${entry.path}/`,
          type: 'directory',
          mode: entry.mode ?? 0o755,
          uid: entry.uid ?? 0,
          gid: entry.gid ?? 0,
        });
      } else if (entry.type === 'symlink') {
        await addEntry(pack, {
          ...common,
          name: entry.path,
          type: 'symlink',
          linkname: entry.target,
          mode: 0o777,
        });
      } else {
        const header = {
          ...common,
          name: entry.path,
          type: 'file' as const,
          mode: entry.mode ?? 0o644,
          uid: entry.uid ?? 0,
          gid: entry.gid ?? 0,
        };
        if ('content' in entry.source) await addEntry(pack, header, entry.source.content);
        else {
          const { hostPath, size } = entry.source;
          await streamEntry(pack, { ...header, size }, createReadStream(hostPath));
        }
      }
    }
    pack.finalize();
  })().catch((err) => pack.destroy(err));
  return Readable.from(pack);
}

function addEntry(pack: tar.Pack, header: EntryHeader, content?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    const sink = content ? pack.entry(header, content, done) : pack.entry(header, done);
    sink.on('error', reject);
  });
}

/**
 * Copy a stream into one tar entry with backpressure. (tar-stream's entries
 * are streamx streams, which node's `pipeline` does not fully understand.)
 */
function streamEntry(pack: tar.Pack, header: EntryHeader, source: AsyncIterable<Buffer>): Promise<void> {
  return new Promise((resolve, reject) => {
    const sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
    sink.on('error', reject);
    (async () => {
      for await (const chunk of source) {
        if (!sink.write(chunk)) await new Promise<void>((drained) => sink.once('drain', () => drained()));
      }
      sink.end(undefined);
    })().catch((err) => {
      sink.destroy(err);
      reject(err);
    });
  });
}

/** SHA-256 and length of a stream. */
export async function digestStream(source: Readable): Promise<{ digest: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of source) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { digest: `sha256:${hash.digest('hex')}`, size };
}

/** The engine's name for this machine's CPU architecture. */
export function goArch(arch: string = process.arch): string {
  const names: Record<string, string> = {
    x64: 'amd64',
    arm64: 'arm64',
    arm: 'arm',
    ia32: '386',
    ppc64: 'ppc64le',
    s390x: 's390x',
  };
  return names[arch] ?? arch;
}

/** The image config JSON; key order is fixed so the bytes (and the image ID) are stable. */
export function imageConfigJson(config: ImageConfig, diffId: string, arch: string = goArch()): Buffer {
  const runtime: Record<string, unknown> = {};
  if (config.user !== undefined) runtime.User = config.user;
  if (config.env) runtime.Env = config.env;
  if (config.entrypoint) runtime.Entrypoint = config.entrypoint;
  if (config.cmd) runtime.Cmd = config.cmd;
  if (config.workingDir) runtime.WorkingDir = config.workingDir;
  if (config.labels) {
    runtime.Labels = Object.fromEntries(Object.entries(config.labels).sort(([a], [b]) => (a < b ? -1 : 1)));
  }
  if (config.stopSignal) runtime.StopSignal = config.stopSignal;
  const created = FIXED_MTIME.toISOString();
  return Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created,
      config: runtime,
      rootfs: { type: 'layers', diff_ids: [diffId] },
      history: [{ created, created_by: 'devbox image-archive' }],
    }),
  );
}

/**
 * Hash the layer once (streaming, nothing kept in memory) and derive the
 * config and image ID. Host files must not change until `archive()` has been
 * read: a changed size fails the tar, a changed content fails `docker load`.
 */
export async function planImage(
  layer: LayerEntry[],
  config: ImageConfig,
  arch?: string,
): Promise<PlannedImage> {
  const entries = normalizeLayer(layer);
  const { digest: diffId, size: layerSize } = await digestStream(layerStream(entries));
  const configJson = imageConfigJson(config, diffId, arch);
  const imageId = `sha256:${createHash('sha256').update(configJson).digest('hex')}`;
  return {
    imageId,
    diffId,
    layerSize,
    config: configJson,
    entries,
    archive: (repoTags) => dockerArchive({ entries, configJson, imageId, diffId, layerSize, repoTags }),
  };
}

function dockerArchive(image: {
  entries: LayerEntry[];
  configJson: Buffer;
  imageId: string;
  diffId: string;
  layerSize: number;
  repoTags: string[];
}): Readable {
  const configName = `${image.imageId.slice('sha256:'.length)}.json`;
  const layerName = `${image.diffId.slice('sha256:'.length)}/layer.tar`;
  const manifest = Buffer.from(
    JSON.stringify([{ Config: configName, RepoTags: image.repoTags, Layers: [layerName] }]),
  );
  const common = { mtime: FIXED_MTIME, uname: '', gname: '', uid: 0, gid: 0 };
  const pack = tar.pack();
  (async () => {
    await addEntry(pack, { ...common, name: configName, type: 'file', mode: 0o644 }, image.configJson);
    await addEntry(pack, { ...common, name: `${posix.dirname(layerName)}/`, type: 'directory', mode: 0o755 });
    const layerHeader = {
      ...common,
      name: layerName,
      type: 'file' as const,
      mode: 0o644,
      size: image.layerSize,
    };
    await streamEntry(pack, layerHeader, layerStream(image.entries));
    await addEntry(pack, { ...common, name: 'manifest.json', type: 'file', mode: 0o644 }, manifest);
    pack.finalize();
  })().catch((err) => pack.destroy(err));
  return Readable.from(pack);
}
