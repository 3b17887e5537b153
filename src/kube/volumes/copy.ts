/**
 * Contents of emptyDir, PVC, hostPath (and other storage) mounts, copied from the pod
 * through the agent: `GET /v1/files?path=<agentPath>` answers a tar of the agent's view of
 * the mount (AGENT_POD_FILES_ROOT + mountPath), which is re-rooted here so that its entries
 * land at the mount path when extracted at `/` (Docker `putArchive(container, '/', tar)`).
 *
 * The agent's tar names a directory's entries relative to it, with no entry for the
 * directory itself, and a single file by its base name. Whether a hostPath or subPath
 * mount is a file or a directory is then only known from the entries: one file entry
 * named like the mount is taken for a file.
 *
 * The agent's tar is outside input (anyone who can run a pod with the workload's labels can
 * answer for the agent), and its entries are written into the local container, whose bind
 * mounts reach the developer's own files. So every entry must stay inside the mount: no
 * absolute names, no `..`, only files, directories and symlinks, no symlink pointing out of
 * the mount and no entry beneath a symlink. One such entry fails the copy of that mount.
 */
import { posix } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar, { type Header, type Pack } from 'tar-stream';
import { DevboxError, errorText } from '../../util/errors.js';
import type { VolumeCopy, VolumeLayout } from './resolve.js';

/** The tunnel call the copy needs (TunnelClient.files). */
export interface FilesSource {
  files(path: string, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Readable>;
}

export interface CopyMountOptions {
  signal?: AbortSignal;
  /** Clear the write bits, standing for a read-only mount. Default: the mount's `readOnly`. */
  stripWriteBits?: boolean;
}

/** What a copy needs to know about the mount. */
export type CopyTarget = Pick<VolumeCopy, 'agentPath' | 'mountPath' | 'readOnly'> &
  Partial<Pick<VolumeCopy, 'kind' | 'root'>>;

type TarHeader = Partial<Header> & Pick<Header, 'name'>;

function relativeMountPath(mountPath: string): string {
  const clean = posix.normalize(mountPath).replace(/\/+$/, '');
  if (!clean.startsWith('/') || clean === '/' || clean.split('/').includes('..')) {
    throw new DevboxError('BAD_INPUT', `mount path must be an absolute path below /: ${mountPath}`);
  }
  return clean.slice(1);
}

function entryName(name: string): string {
  return name.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

/** Entry types the agent sends (agent/files.ts); anything else is refused. */
const COPIED_TYPES: ReadonlySet<Header['type']> = new Set(['file', 'directory', 'symlink']);

/**
 * Checks the agent's tar entries, in stream order, against the mount they are copied to.
 * Entries beneath a symlink are refused because an extractor writes through the link.
 */
export class MountEntryGuard {
  private readonly symlinks = new Set<string>();
  private readonly mountPath: string;

  constructor(mountPath: string) {
    this.mountPath = `/${relativeMountPath(mountPath)}`;
  }

  /**
   * The entry's path relative to the mount (`''` for the mount itself), or a PROTOCOL
   * DevboxError naming the entry and what is wrong with it.
   */
  check(h: Pick<Header, 'name' | 'type'> & { linkname?: string | null | undefined }): string {
    const raw = h.name;
    if (raw.includes('\0')) throw this.refuse(raw, 'has a NUL byte in its name');
    const name = entryName(raw);
    if (raw.startsWith('/') || name.startsWith('/')) throw this.refuse(raw, 'has an absolute name');
    if (name.split('/').includes('..')) throw this.refuse(raw, 'climbs out of the mount with ..');
    if (!COPIED_TYPES.has(h.type)) {
      throw this.refuse(
        raw,
        `is a ${h.type ?? 'typeless'} entry; only files, directories and symlinks are copied`,
      );
    }
    const path = name === '' ? '' : posix.normalize(name).replace(/^(\.\/?)+$|\/+$/g, '');
    if (path === '' && h.type !== 'directory') throw this.refuse(raw, 'has no name');
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      if (this.symlinks.has(parent))
        throw this.refuse(raw, `lies beneath the symlink ${JSON.stringify(parent)}`);
    }
    if (h.type === 'symlink') {
      const link = h.linkname ?? '';
      if (link === '' || link.includes('\0')) throw this.refuse(raw, 'is a symlink with no target');
      if (!this.staysInside(parts.slice(0, -1), link)) {
        throw this.refuse(raw, `is a symlink to ${JSON.stringify(link)}, outside the mount`);
      }
      this.symlinks.add(path);
    }
    return path;
  }

  /**
   * Whether `link`, read from the directory `dir` (components below the mount), names a path
   * inside the mount. `..` may only lead a relative target: after a named component it could
   * step back out of a symlink (`a/..` with `a -> .`), which a lexical check cannot see.
   */
  private staysInside(dir: string[], link: string): boolean {
    const components = link.split('/').filter((c) => c !== '' && c !== '.');
    if (link.startsWith('/')) {
      const mount = this.mountPath.split('/').filter(Boolean);
      return mount.every((c, i) => components[i] === c) && !components.slice(mount.length).includes('..');
    }
    let up = 0;
    while (components[up] === '..') up++;
    return up <= dir.length && !components.slice(up).includes('..');
  }

  /** Refuses anything but a file where the mount is a single file (it lands at the mount path itself). */
  checkFileMount(h: Pick<Header, 'name' | 'type'>): void {
    if (h.type !== 'file')
      throw this.refuse(h.name, `is a ${h.type ?? 'typeless entry'} where the mount is a single file`);
  }

  private refuse(name: string, why: string): DevboxError {
    return new DevboxError(
      'PROTOCOL',
      `refused the tar entry ${JSON.stringify(name)} that the agent sent for ${this.mountPath}: it ${why}`,
      {
        hint: `devbox copies only entries that stay inside ${this.mountPath}; check what wrote this one in the pod's volume`,
      },
    );
  }
}

/**
 * A tar stream of the mount's contents in the pod, named for extraction at `/`. Fails
 * before streaming when the agent cannot read the mount (NOT_FOUND, FORBIDDEN, TUNNEL);
 * later failures error the stream.
 */
export async function mountContentsTar(
  source: FilesSource,
  target: CopyTarget,
  options: CopyMountOptions = {},
): Promise<Readable> {
  const rel = relativeMountPath(target.mountPath);
  const strip = options.stripWriteBits ?? target.readOnly;
  let input: Readable;
  try {
    input = await source.files(target.agentPath, { signal: options.signal });
  } catch (err) {
    throw refusal(err, target);
  }
  const extract = tar.extract();
  const pack = tar.pack();
  const out = new PassThrough();
  const baseName = posix.basename(target.agentPath);

  const header = (h: Header, name: string): TarHeader => ({
    name,
    type: h.type,
    mode: strip ? h.mode & ~0o222 : h.mode,
    uid: h.uid,
    gid: h.gid,
    mtime: h.mtime,
    size: h.type === 'file' ? h.size : 0,
    linkname: h.linkname ?? undefined,
    uname: h.uname,
    gname: h.gname,
  });
  const add = async (pk: Pack, h: TarHeader, body?: EntryBody | Buffer) => {
    if (h.type !== 'file') {
      await new Promise<void>((resolve, reject) => pk.entry(h, (err) => (err ? reject(err) : resolve())));
      if (body && !Buffer.isBuffer(body)) body.resume();
      return;
    }
    if (Buffer.isBuffer(body)) {
      await new Promise<void>((resolve, reject) =>
        pk.entry(h, body, (err) => (err ? reject(err) : resolve())),
      );
      return;
    }
    await pipeline(body as unknown as Readable, pk.entry(h));
  };
  const rootEntry = (mode?: number, uid?: number, gid?: number): TarHeader | undefined => {
    const m = mode ?? target.root?.mode;
    if (m === undefined) return undefined;
    return {
      name: `${rel}/`,
      type: 'directory',
      mode: strip ? m & ~0o222 : m,
      uid: uid ?? target.root?.uid ?? 0,
      gid: gid ?? target.root?.gid ?? 0,
    };
  };

  const guard = new MountEntryGuard(target.mountPath);
  const run = async () => {
    const it = extract[Symbol.asyncIterator]();
    let kind = target.kind;
    let rootWritten = false;
    const writeRoot = async (mode?: number, uid?: number, gid?: number) => {
      if (rootWritten) return;
      rootWritten = true;
      const root = rootEntry(mode, uid, gid);
      if (root) await add(pack, root);
    };
    let next = await it.next();
    if (!next.done) {
      const h = next.value.header;
      const name = guard.check(h);
      if (name === '' && h.type === 'directory' && kind !== 'file') {
        // An agent that names the root itself: its mode and owner are the mount point's.
        kind = 'directory';
        await writeRoot(h.mode, h.uid, h.gid);
        next.value.resume();
        next = await it.next();
      } else if (kind === undefined && h.type === 'file' && name === baseName) {
        // One file named like the mount is the mount itself, unless more entries follow.
        const content = await collect(next.value);
        const second = await it.next();
        kind = second.done ? 'file' : 'directory';
        if (kind === 'directory') await writeRoot();
        await add(pack, header(h, kind === 'file' ? rel : `${rel}/${name}`), content);
        next = second;
      }
    }
    if (kind !== 'file') await writeRoot();
    for (; !next.done; next = await it.next()) {
      const h = next.value.header;
      const name = guard.check(h);
      if (kind === 'file') guard.checkFileMount(h);
      const at = kind === 'file' ? rel : name === '' ? `${rel}/` : `${rel}/${name}`;
      await add(pack, header(h, at), next.value);
    }
  };
  void pipeline(input, extract).catch((err) => pack.destroy(asCopyError(err, target)));
  run()
    .then(() => pack.finalize())
    .catch((err) => pack.destroy(asCopyError(err, target)));
  pipeline(pack, out).catch((err) => out.destroy(asCopyError(err, target)));
  return out;
}

/** The agent's refusal as an error naming the mount. */
function refusal(err: unknown, target: CopyTarget): Error {
  const status = (err as { status?: unknown }).status;
  if (status === 404) {
    return new DevboxError(
      'NOT_FOUND',
      `the agent does not see ${target.agentPath} (mount ${target.mountPath})`,
      {
        hint: 'the agent mounts the app container volumes when it is injected; run `devbox down` then `devbox up` to re-inject it',
        cause: err,
      },
    );
  }
  if (status === 403) {
    return new DevboxError('FORBIDDEN', `the agent may not read ${target.mountPath} in the pod`, {
      hint: "the agent runs as the app's user (or 65532 when the app runs as root); files that user cannot read cannot be copied",
      cause: err,
    });
  }
  return asCopyError(err, target);
}

function asCopyError(err: unknown, target: CopyTarget): Error {
  if (err instanceof DevboxError) return err;
  return new DevboxError('TUNNEL', `copying ${target.mountPath} from the pod failed: ${errorText(err)}`, {
    cause: err,
  });
}

/** An entry's content as tar-stream hands it out (a streamx Readable). */
type EntryBody = AsyncIterable<unknown> & { resume(): unknown };

async function collect(stream: EntryBody): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The generated part of a layout (directories with their modes and owners, then files) as a
 * tar stream named for extraction at `/`, for Docker's `putArchive(container, '/', tar)`.
 */
export function layoutTar(
  layout: Pick<VolumeLayout, 'files' | 'directories'>,
  options: { mtime?: Date } = {},
): Readable {
  const mtime = options.mtime ?? new Date();
  const pack = tar.pack();
  for (const d of layout.directories) {
    pack.entry({
      name: `${relativeMountPath(d.path)}/`,
      type: 'directory',
      mode: d.mode,
      uid: d.uid,
      gid: d.gid,
      mtime,
    });
  }
  for (const f of layout.files) {
    pack.entry(
      {
        name: relativeMountPath(f.path),
        type: 'file',
        size: f.content.length,
        mode: f.mode,
        uid: f.uid,
        gid: f.gid,
        mtime,
      },
      f.content,
    );
  }
  pack.finalize();
  const out = new PassThrough();
  pipeline(pack, out).catch((err) => out.destroy(err));
  return out;
}

/** One entry of a tar stream, read whole. */
export interface TarEntry {
  /** Absolute path (the tar name with a leading `/`, no trailing `/`). */
  path: string;
  type: Header['type'];
  mode: number;
  uid: number;
  gid: number;
  content?: Buffer;
  linkname?: string;
}

/** Reads a whole tar stream into entries (small volumes, tests, diffs). */
export async function readTarEntries(stream: Readable): Promise<TarEntry[]> {
  const extract = tar.extract();
  const done = pipeline(stream, extract);
  // The pipeline fails with the same error as the loop; left unhandled, it would end the process.
  done.catch(() => {});
  const entries: TarEntry[] = [];
  for await (const entry of extract) {
    const h = entry.header;
    const out: TarEntry = {
      path: `/${entryName(h.name)}`,
      type: h.type,
      mode: h.mode,
      uid: h.uid,
      gid: h.gid,
    };
    if (h.type === 'file') out.content = await collect(entry);
    else entry.resume();
    if (h.linkname) out.linkname = h.linkname;
    entries.push(out);
  }
  await done;
  return entries;
}
