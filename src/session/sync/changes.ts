/**
 * What to send: a snapshot of a sync rule's files (honouring `.dockerignore`),
 * and the change set between two snapshots. The first sync is the change set
 * from an empty snapshot; later ones carry only what changed, deletions too.
 */
import { promises as fs } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { type ContextFilter, contextFilter, parseDockerignore } from '../../docker/index.js';
import type { SyncRule } from './rules.js';

export interface SnapshotEntry {
  type: 'file' | 'directory' | 'symlink';
  size: number;
  mtimeMs: number;
  mode: number;
  linkname?: string;
}

/** Paths relative to the rule's LOCAL (`/`-separated; `''` is LOCAL itself when it is a file). */
export type Snapshot = ReadonlyMap<string, SnapshotEntry>;

export interface ChangeSet {
  /** Files, directories and links to (re)write, parents before children. */
  upserts: string[];
  /** Paths gone (or whose type changed), only the top-most of a removed subtree. */
  deletions: string[];
}

export function isEmpty(changes: ChangeSet): boolean {
  return changes.upserts.length === 0 && changes.deletions.length === 0;
}

function sameEntry(a: SnapshotEntry, b: SnapshotEntry): boolean {
  if (a.type !== b.type || a.mode !== b.mode) return false;
  if (a.type === 'directory') return true;
  if (a.type === 'symlink') return a.linkname === b.linkname;
  return a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/** Pure: what turns `before` into `after`. */
export function diffSnapshots(before: Snapshot, after: Snapshot): ChangeSet {
  const upserts: string[] = [];
  const removed = new Set<string>();
  for (const [path, entry] of after) {
    const old = before.get(path);
    if (!old || !sameEntry(old, entry)) upserts.push(path);
    // A file that became a directory (or the reverse) is removed first.
    if (old && old.type !== entry.type) removed.add(path);
  }
  for (const path of before.keys()) if (!after.has(path)) removed.add(path);
  const deletions = [...removed].filter((path) => !hasAncestorIn(path, removed)).sort();
  return { upserts: upserts.sort(), deletions };
}

function hasAncestorIn(path: string, set: ReadonlySet<string>): boolean {
  for (let p = posix.dirname(path); p !== '.' && p !== '/' && p !== ''; p = posix.dirname(p))
    if (set.has(p)) return true;
  return false;
}

/** Where a snapshot path lands in the container. */
export function containerPath(rule: Pick<SyncRule, 'container'>, path: string): string {
  return path ? posix.join(rule.container, path) : rule.container;
}

/**
 * The `.dockerignore` that governs `local`: the nearest one from LOCAL up to the
 * project root; its patterns are relative to the directory that holds it.
 */
export async function loadIgnore(
  local: string,
  project: string,
): Promise<{ base: string; filter: ContextFilter } | undefined> {
  for (let dir = local; ; dir = dirname(dir)) {
    const text = await fs.readFile(join(dir, '.dockerignore'), 'utf8').catch(() => undefined);
    if (text !== undefined) return { base: dir, filter: contextFilter(parseDockerignore(text)) };
    if (dir === project || dirname(dir) === dir || !`${dir}${sep}`.startsWith(`${project}${sep}`)) break;
  }
  return undefined;
}

function toPosix(path: string): string {
  return path.split(sep).join('/');
}

/** Reads what the rule would send now. Files that vanish while being read are simply left out. */
export async function takeSnapshot(rule: SyncRule, project: string): Promise<Snapshot> {
  const out = new Map<string, SnapshotEntry>();
  const ignore = await loadIgnore(rule.directory ? rule.local : dirname(rule.local), project);
  const excluded = (abs: string) =>
    ignore ? ignore.filter.excludes(toPosix(relative(ignore.base, abs))) : false;
  const mustWalk = (abs: string) =>
    ignore ? ignore.filter.mustWalk(toPosix(relative(ignore.base, abs))) : false;
  const entryOf = async (abs: string): Promise<SnapshotEntry | undefined> => {
    const stat = await fs.lstat(abs).catch(() => undefined);
    if (!stat) return undefined;
    const base = { size: stat.size, mtimeMs: stat.mtimeMs, mode: stat.mode & 0o7777 };
    if (stat.isDirectory()) return { ...base, type: 'directory', size: 0 };
    if (stat.isFile()) return { ...base, type: 'file' };
    if (stat.isSymbolicLink()) {
      const linkname = await fs.readlink(abs).catch(() => undefined);
      return linkname === undefined ? undefined : { ...base, type: 'symlink', linkname };
    }
    return undefined; // sockets, fifos, devices
  };
  if (!rule.directory) {
    const entry = await entryOf(rule.local);
    if (entry && !excluded(rule.local)) out.set('', entry);
    return out;
  }
  const walk = async (rel: string): Promise<void> => {
    const names = await fs.readdir(join(rule.local, rel)).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const childRel = rel ? `${rel}/${name}` : name;
      const abs = join(rule.local, childRel);
      const entry = await entryOf(abs);
      if (!entry) continue;
      const skip = excluded(abs);
      if (entry.type === 'directory') {
        if (skip && !mustWalk(abs)) continue;
        if (!skip) out.set(childRel, entry);
        await walk(childRel);
      } else if (!skip) {
        out.set(childRel, entry);
      }
    }
  };
  await walk('');
  return out;
}
