import { execFile } from 'node:child_process';
import { constants, promises as fs } from 'node:fs';
import { delimiter, posix } from 'node:path';
import { promisify } from 'node:util';
import { DevboxError, errorText } from '../util/errors.js';
import type { FileEntry, LayerEntry, SymlinkEntry } from './image-archive.js';

/**
 * Host files copied into images: a binary with the shared libraries `ldd`
 * lists, each reproduced at the same path with the symlinks on the way
 * (merged-/usr hosts reach `/lib64/ld-linux-x86-64.so.2` through two links).
 */

const run = promisify(execFile);

export interface LddResult {
  /** Absolute paths, loader included, in the order ldd printed them. */
  libraries: string[];
  /** Sonames ldd could not find. */
  missing: string[];
  /** True for a static executable (nothing to copy). */
  isStatic: boolean;
}

/**
 * Parse `ldd` output (glibc and musl). Lines look like
 * `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)`,
 * `/lib64/ld-linux-x86-64.so.2 (0x…)`, `linux-vdso.so.1 (0x…)` (kernel-provided,
 * skipped) or `libfoo.so => not found`.
 */
export function parseLddOutput(text: string): LddResult {
  const libraries: string[] = [];
  const missing: string[] = [];
  let isStatic = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (/not a dynamic executable|statically linked/.test(line)) {
      isStatic = true;
      continue;
    }
    const arrow = /^(\S+)\s+=>\s+(.*)$/.exec(line);
    if (arrow) {
      const [, name, rest] = arrow;
      if (/^not found/.test(rest ?? '')) missing.push(name!);
      else {
        const path = /^(\/\S+)/.exec(rest ?? '')?.[1];
        if (path && !libraries.includes(path)) libraries.push(path);
      }
      continue;
    }
    const direct = /^(\/\S+)(\s+\(0x[0-9a-f]+\))?$/.exec(line);
    if (direct && !libraries.includes(direct[1]!)) libraries.push(direct[1]!);
  }
  return { libraries, missing, isStatic };
}

/** Run `ldd` on a host binary. */
export async function ldd(binary: string): Promise<LddResult> {
  let output: string;
  try {
    const { stdout, stderr } = await run('ldd', [binary], { encoding: 'utf8' });
    output = `${stdout}\n${stderr}`;
  } catch (err) {
    const { stdout = '', stderr = '', code } = err as { stdout?: string; stderr?: string; code?: unknown };
    output = `${stdout}\n${stderr}`;
    if (code === 'ENOENT') {
      throw new DevboxError('NOT_FOUND', 'ldd is not installed on this machine', {
        hint: 'Install it (Debian/Ubuntu: libc-bin) or configure a public runtime image instead of building one.',
        cause: err,
      });
    }
    // glibc's ldd exits 1 for static executables.
    if (!/not a dynamic executable|statically linked/.test(output)) {
      throw new DevboxError('INTERNAL', `ldd ${binary} failed: ${stderr.trim() || errorText(err)}`, {
        cause: err,
      });
    }
  }
  const result = parseLddOutput(output);
  if (result.missing.length) {
    throw new DevboxError(
      'NOT_FOUND',
      `${binary} needs libraries this machine lacks: ${result.missing.join(', ')}`,
      {
        hint: 'Install them, or configure a public runtime image instead of building one.',
      },
    );
  }
  return result;
}

/** File system calls the resolver needs; tests pass fakes. */
export interface HostFs {
  lstat(path: string): Promise<{
    isSymbolicLink(): boolean;
    isFile(): boolean;
    isDirectory(): boolean;
    mode: number;
    size: number;
  }>;
  readlink(path: string): Promise<string>;
}

const hostFs: HostFs = { lstat: (p) => fs.lstat(p), readlink: (p) => fs.readlink(p) };

/**
 * Entries that reproduce host `path` in an image: every symlink met while
 * resolving it (as a symlink entry at its own path) and the regular file at
 * its real path. Permission bits are kept except set-id bits.
 */
export async function hostPathEntries(path: string, fsx: HostFs = hostFs): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [];
  let pending = posix.normalize(path);
  for (let hops = 0; hops < 40; hops++) {
    const parts = pending.split('/').filter(Boolean);
    let current = '/';
    let followed = false;
    for (let i = 0; i < parts.length; i++) {
      const candidate = posix.join(current, parts[i]!);
      const stat = await statOrThrow(fsx, candidate, path);
      if (stat.isSymbolicLink()) {
        const target = await fsx.readlink(candidate);
        entries.push({ type: 'symlink', path: candidate, target } satisfies SymlinkEntry);
        const resolved = posix.isAbsolute(target) ? target : posix.join(current, target);
        pending = posix.join(resolved, ...parts.slice(i + 1));
        followed = true;
        break;
      }
      if (i === parts.length - 1) {
        if (!stat.isFile()) throw new DevboxError('BAD_INPUT', `${path} is not a regular file`);
        entries.push({
          type: 'file',
          path: candidate,
          mode: stat.mode & 0o777,
          source: { hostPath: candidate, size: stat.size },
        } satisfies FileEntry);
        return entries;
      }
      if (!stat.isDirectory())
        throw new DevboxError('BAD_INPUT', `${candidate} (on the way to ${path}) is not a directory`);
      current = candidate;
    }
    if (!followed) break;
  }
  throw new DevboxError('BAD_INPUT', `Too many symbolic links while resolving ${path}`);
}

async function statOrThrow(fsx: HostFs, candidate: string, wanted: string) {
  try {
    return await fsx.lstat(candidate);
  } catch (err) {
    throw new DevboxError('NOT_FOUND', `Cannot read ${candidate} (needed for ${wanted}): ${errorText(err)}`, {
      cause: err,
    });
  }
}

/** A host binary to copy into an image, with the libraries it needs. */
export interface HostBinary {
  hostPath: string;
  /** Where it goes in the image (default: its real host path). */
  imagePath?: string;
  /** Extra names pointing at it, e.g. `/sbin/ip` for busybox. */
  links?: string[];
}

/** Layer entries for binaries and their libraries, plus the library directories used. */
export async function binaryClosure(
  binaries: HostBinary[],
  fsx: HostFs = hostFs,
  lddOf: (binary: string) => Promise<LddResult> = ldd,
): Promise<{ entries: LayerEntry[]; libraryDirs: string[]; loaders: string[] }> {
  const entries: LayerEntry[] = [];
  const libraryDirs = new Set<string>();
  const loaders = new Set<string>();
  for (const binary of binaries) {
    const real = await fs.realpath(binary.hostPath).catch((err) => {
      throw new DevboxError('NOT_FOUND', `Cannot read ${binary.hostPath}: ${errorText(err)}`, { cause: err });
    });
    const stat = await fsx.lstat(real);
    const imagePath = binary.imagePath ?? real;
    entries.push({
      type: 'file',
      path: imagePath,
      mode: stat.mode & 0o755,
      source: { hostPath: real, size: stat.size },
    });
    for (const link of binary.links ?? []) entries.push({ type: 'symlink', path: link, target: imagePath });
    const deps = await lddOf(real);
    for (const lib of deps.libraries) {
      entries.push(...(await hostPathEntries(lib, fsx)));
      if (/\/ld-[^/]*\.so/.test(lib)) loaders.add(lib);
      else libraryDirs.add(posix.dirname(lib));
    }
  }
  return { entries, libraryDirs: [...libraryDirs].sort(), loaders: [...loaders].sort() };
}

/**
 * Directories the dynamic loader searches without a cache, read from
 * `ld.so --help` (glibc ≥ 2.33); undefined when it cannot tell.
 */
export async function loaderSearchPath(loader: string): Promise<string[] | undefined> {
  try {
    const { stdout } = await run(loader, ['--help'], { encoding: 'utf8' });
    const dirs = [...stdout.matchAll(/^\s+(\/\S+) \(system search path\)$/gm)].map((m) => m[1]!);
    return dirs.length ? dirs : undefined;
  } catch {
    return undefined;
  }
}

/**
 * LD_LIBRARY_PATH an image needs: the library directories the loader would
 * not search by itself (images carry no ld.so.cache), or undefined.
 */
export function libraryPathFor(libraryDirs: string[], systemDirs: string[] | undefined): string | undefined {
  const extra = systemDirs ? libraryDirs.filter((d) => !systemDirs.includes(d)) : libraryDirs;
  return extra.length ? extra.join(':') : undefined;
}

/** First executable named `name` on PATH or in the usual sbin directories. */
export async function findExecutable(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  const dirs = [
    ...(env.PATH ?? '').split(delimiter),
    '/usr/local/sbin',
    '/usr/sbin',
    '/sbin',
    '/usr/bin',
    '/bin',
  ];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = posix.join(dir, name);
    try {
      await fs.access(candidate, constants.X_OK);
      if ((await fs.stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
