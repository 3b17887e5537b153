/**
 * `--sync LOCAL:CONTAINER` rules, checked before anything changes: LOCAL must
 * exist inside the project (the directory devbox runs in), CONTAINER must be an
 * absolute path.
 */
import { promises as fs } from 'node:fs';
import { isAbsolute, posix, relative, resolve, sep } from 'node:path';
import { DevboxError } from '../../util/errors.js';

/** What the session does once changed files are in the container. */
export type OnChange = 'restart' | 'rebuild' | 'none';
export const ON_CHANGE: readonly OnChange[] = ['restart', 'rebuild', 'none'];

export interface SyncRule {
  /** Absolute path on this machine (a directory or a file). */
  local: string;
  /** Absolute, normalized path in the service container. */
  container: string;
  /** True when `local` is a directory. */
  directory: boolean;
  /** The flag as given, for messages. */
  flag: string;
}

/** `src:/app/src` → its halves. Splits at the first `:` followed by `/` (LOCAL may hold a `:`, CONTAINER is absolute). */
export function splitSyncFlag(flag: string): { local: string; container: string } {
  const at = flag.lastIndexOf(':/');
  if (at <= 0)
    throw new DevboxError('BAD_INPUT', `--sync ${flag}: expected LOCAL:CONTAINER, e.g. --sync src:/app/src`, {
      hint: 'Name a path of this project, a colon, and the absolute path it goes to in the container.',
    });
  return { local: flag.slice(0, at), container: flag.slice(at + 1) };
}

/** Why a container path cannot be a sync target (undefined: fine). */
export function containerPathProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'the container path must be absolute';
  const trimmed = path.length > 1 ? path.replace(/\/$/, '') : path;
  if (posix.normalize(trimmed) !== trimmed)
    return 'the container path must be normalized (no `.`, `..` or `//`)';
  if (trimmed === '/') return 'syncing onto the container’s root would replace its whole file system';
  return undefined;
}

/** True when `path` is `project` or inside it. */
export function insideProject(project: string, path: string): boolean {
  const rel = relative(project, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/**
 * Checks every flag (all problems at once) and resolves LOCAL against `project`.
 * Symbolic links are followed when checking that LOCAL stays inside the project.
 */
export async function resolveSyncRules(flags: readonly string[], project: string): Promise<SyncRule[]> {
  const root = await fs.realpath(project).catch(() => resolve(project));
  const problems: string[] = [];
  const rules: SyncRule[] = [];
  for (const flag of flags) {
    let parts: { local: string; container: string };
    try {
      parts = splitSyncFlag(flag);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    const containerProblem = containerPathProblem(parts.container);
    if (containerProblem) problems.push(`--sync ${flag}: ${containerProblem}`);
    const local = resolve(project, parts.local);
    const real = await fs.realpath(local).catch(() => undefined);
    if (!real) {
      problems.push(`--sync ${flag}: ${local} does not exist`);
      continue;
    }
    if (!insideProject(root, real)) {
      problems.push(`--sync ${flag}: ${local} is outside the project (${root})`);
      continue;
    }
    const stat = await fs.stat(real);
    if (!containerProblem)
      rules.push({
        local: real,
        container: parts.container.length > 1 ? parts.container.replace(/\/$/, '') : parts.container,
        directory: stat.isDirectory(),
        flag,
      });
  }
  if (problems.length)
    throw new DevboxError('BAD_INPUT', problems.join('\n'), {
      hint: 'Each --sync names a file or directory of this project (run devbox from the project) and an absolute container path, e.g. --sync src:/app/src.',
    });
  return rules;
}
