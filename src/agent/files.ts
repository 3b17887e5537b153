import { createReadStream, type Stats } from 'node:fs';
import { lstat, readdir, readlink, realpath } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import tar, { type Header, type Pack } from 'tar-stream';

type TarHeader = Partial<Header> & Pick<Header, 'name'>;

/**
 * True when `path` lies in the tree at `root`, also once every symlink on the way is followed
 * (a link in a volume must not lead to /proc or the agent's own service-account token).
 * Throws ENOENT when `path` does not exist.
 */
export async function isWithin(root: string, path: string): Promise<boolean> {
  const inside = (base: string, p: string) => p === base || p.startsWith(base === '/' ? '/' : `${base}/`);
  if (!inside(posix.normalize(root), posix.normalize(path))) return false;
  return inside(await realpath(root), await realpath(path));
}

/**
 * A tar stream (ustar with pax for long names) of `root`: a directory's whole tree, relative names,
 * or a single file. Regular files, directories and symlinks; sockets, fifos and devices are skipped.
 * Throws before streaming when `root` does not exist; later failures error the stream.
 */
export async function packPath(root: string): Promise<Pack> {
  const rootStat = await lstat(root);
  const pack = tar.pack();
  const run = async () => {
    if (rootStat.isDirectory()) await packDirectory(pack, root, '');
    else await packEntry(pack, root, basename(root), rootStat);
    pack.finalize();
  };
  run().catch((err: Error) => pack.destroy(err));
  return pack;
}

async function packDirectory(pack: Pack, dir: string, prefix: string): Promise<void> {
  const names = (await readdir(dir)).sort();
  for (const name of names) {
    const path = join(dir, name);
    const rel = prefix ? `${prefix}/${name}` : name;
    let st: Stats;
    try {
      st = await lstat(path);
    } catch {
      continue; // removed while walking
    }
    await packEntry(pack, path, rel, st);
    if (st.isDirectory()) await packDirectory(pack, path, rel);
  }
}

function header(name: string, st: Stats): TarHeader {
  return { name, mode: st.mode & 0o7777, mtime: st.mtime, uid: st.uid, gid: st.gid };
}

async function packEntry(pack: Pack, path: string, name: string, st: Stats): Promise<void> {
  if (st.isDirectory()) {
    await addEntry(pack, { ...header(name, st), type: 'directory' });
  } else if (st.isSymbolicLink()) {
    await addEntry(pack, { ...header(name, st), type: 'symlink', linkname: await readlink(path) });
  } else if (st.isFile()) {
    if (st.size === 0) {
      await addEntry(pack, { ...header(name, st), type: 'file', size: 0 }, Buffer.alloc(0));
    } else {
      const entry = pack.entry({ ...header(name, st), type: 'file', size: st.size });
      await pipeline(createReadStream(path, { start: 0, end: st.size - 1 }), entry);
    }
  }
}

/** Adds an entry without streamed content (a directory, a symlink, an empty file). */
function addEntry(pack: Pack, headers: TarHeader, body?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    const sink = body ? pack.entry(headers, body, done) : pack.entry(headers, done);
    // A destroyed pack errors its entries: keep that from becoming an uncaught exception.
    sink.on('error', reject);
  });
}
