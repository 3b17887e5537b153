/**
 * `devbox up --build <dir>`: the directory as a tar build context, filtered by
 * its `.dockerignore` the way the docker CLI does, built by the engine.
 *
 * Pattern matching uses @balena/dockerignore, a port of the engine's own
 * matcher (already a dependency of dockerode): `*`, `**`, `?`, `!` exceptions,
 * path cleaning and parent-directory exclusion behave exactly as in
 * `docker build`. Directory pruning follows the CLI: an excluded directory is
 * skipped unless an exception pattern names something inside it.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fs, type Stats } from 'node:fs';
import { basename, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import dockerignore from '@balena/dockerignore';
import tar from 'tar-stream';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';
import type { DockerClient } from './client.js';

// A CommonJS module: its function is the module itself, typed as its `default`.
const ignore = dockerignore.default;

/** The patterns of a `.dockerignore`, cleaned as the engine does (comments and blanks dropped). */
export function parseDockerignore(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    if (negated) line = line.slice(1).trim();
    if (!line) continue;
    let clean = posix.normalize(line);
    if (clean.startsWith('/')) clean = clean.slice(1) || '.';
    if (clean.endsWith('/') && clean.length > 1) clean = clean.slice(0, -1);
    out.push(negated ? `!${clean}` : clean);
  }
  return out;
}

/** Decides, for paths relative to the context root (`/`-separated), what goes into the context. */
export interface ContextFilter {
  /** True when the path is excluded. */
  excludes(path: string): boolean;
  /** True when an excluded directory must still be walked (an exception may name something inside). */
  mustWalk(dir: string): boolean;
}

/**
 * A filter for these patterns. The Dockerfile and `.dockerignore` are always
 * sent (the engine needs them), as the docker CLI does.
 */
export function contextFilter(
  patterns: readonly string[],
  alwaysInclude: readonly string[] = [],
): ContextFilter {
  const all = [...patterns];
  for (const path of alwaysInclude) if (patterns.length) all.push(`!${path}`);
  const matcher = ignore({ ignorecase: false }).add(all);
  const exceptions = all.filter((p) => p.startsWith('!')).map((p) => p.slice(1));
  return {
    excludes: (path) => matcher.ignores(path),
    mustWalk: (dir) => exceptions.some((p) => `${p}/`.startsWith(`${dir}/`)),
  };
}

/** One entry of a build context, before it is streamed. */
export interface ContextEntry {
  /** Path in the tar (`/`-separated, relative). */
  name: string;
  /** Path on this machine. */
  path: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  size: number;
  mtime: Date;
  linkname?: string;
}

export interface BuildContext {
  entries: ContextEntry[];
  /** Dockerfile name to pass to the engine (a generated name when it lives outside the directory). */
  dockerfile: string;
  /** Bytes of file content. */
  bytes: number;
}

/**
 * Lists what the context of `dir` holds, honouring `.dockerignore`.
 * `dockerfile` is relative to `dir` (or absolute); one outside `dir` is added
 * under a generated name, as the docker CLI does.
 */
export async function planBuildContext(
  dir: string,
  options: { dockerfile?: string } = {},
): Promise<BuildContext> {
  const root = resolve(dir);
  const rootStat = await fs.stat(root).catch(() => undefined);
  if (!rootStat?.isDirectory())
    throw new DevboxError('BAD_INPUT', `The build directory ${dir} does not exist or is not a directory`, {
      hint: 'Pass the directory that holds the Dockerfile to `--build`.',
    });
  const dockerfilePath = resolve(root, options.dockerfile ?? 'Dockerfile');
  const dockerfileStat = await fs.stat(dockerfilePath).catch(() => undefined);
  if (!dockerfileStat?.isFile())
    throw new DevboxError('BAD_INPUT', `No Dockerfile at ${dockerfilePath}`, {
      hint: '`--build <dir>` needs a Dockerfile in that directory (or name another one with the Dockerfile option).',
    });
  const inside = relative(root, dockerfilePath);
  const outside = inside.startsWith('..') || isAbsolute(inside);
  const dockerfile = outside ? `.dockerfile.${randomBytes(10).toString('hex')}` : inside.split(sep).join('/');

  const ignoreText = await fs.readFile(join(root, '.dockerignore'), 'utf8').catch(() => '');
  const filter = contextFilter(
    parseDockerignore(ignoreText),
    outside ? ['.dockerignore'] : [dockerfile, '.dockerignore'],
  );
  const entries: ContextEntry[] = [];
  let bytes = 0;

  const walk = async (relDir: string): Promise<void> => {
    const names = (await fs.readdir(join(root, relDir))).sort();
    for (const name of names) {
      const rel = relDir ? `${relDir}/${name}` : name;
      const path = join(root, rel);
      const stat = await fs.lstat(path);
      const excluded = filter.excludes(rel);
      if (stat.isDirectory()) {
        if (excluded && !filter.mustWalk(rel)) continue;
        if (!excluded) entries.push(entryOf(rel, path, 'directory', stat));
        await walk(rel);
      } else if (!excluded) {
        if (stat.isFile()) {
          entries.push(entryOf(rel, path, 'file', stat));
          bytes += stat.size;
        } else if (stat.isSymbolicLink()) {
          entries.push({ ...entryOf(rel, path, 'symlink', stat), linkname: await fs.readlink(path) });
        }
        // Sockets, fifos and devices are not sent, as with the docker CLI.
      }
    }
  };
  await walk('');
  if (outside) {
    entries.push(entryOf(dockerfile, dockerfilePath, 'file', dockerfileStat));
    bytes += dockerfileStat.size;
  }
  return { entries, dockerfile, bytes };
}

function entryOf(name: string, path: string, type: ContextEntry['type'], stat: Stats): ContextEntry {
  return {
    name,
    path,
    type,
    mode: stat.mode & 0o7777,
    size: type === 'file' ? stat.size : 0,
    mtime: stat.mtime,
  };
}

/** Streams the planned context as a tar (files read as they are sent; owners set to root as the CLI does). */
export function contextTar(context: BuildContext): Readable {
  const pack = tar.pack();
  (async () => {
    for (const entry of context.entries) {
      const header = { name: entry.name, mode: entry.mode, mtime: entry.mtime, uid: 0, gid: 0 };
      if (entry.type === 'directory') {
        pack.entry({ ...header, type: 'directory' });
      } else if (entry.type === 'symlink') {
        pack.entry({ ...header, type: 'symlink', linkname: entry.linkname ?? '' });
      } else {
        await new Promise<void>((resolveEntry, reject) => {
          const sink = pack.entry({ ...header, type: 'file', size: entry.size }, (err) =>
            err ? reject(err) : resolveEntry(),
          );
          const source = createReadStream(entry.path);
          source.once('error', reject);
          source.pipe(sink);
        });
      }
    }
    pack.finalize();
  })().catch((err) =>
    pack.destroy(
      new DevboxError('BAD_INPUT', `Cannot read the build context: ${errorText(err)}`, {
        hint: 'A file changed or became unreadable while it was sent.',
        cause: err,
      }),
    ),
  );
  return Readable.from(pack);
}

export interface BuildDirectoryOptions {
  /** Dockerfile path relative to the directory (or absolute); default `Dockerfile`. */
  dockerfile?: string;
  /** Default `devbox-build-<directory name>:latest`. */
  tag?: string;
  buildArgs?: Record<string, string>;
  target?: string;
  labels?: Record<string, string>;
  /** Build output, line by line (for progress on stderr). */
  onOutput?: (line: string) => void;
}

export interface BuiltImage {
  /** `sha256:…` */
  imageId: string;
  tag: string;
  /** Files and bytes sent as the context. */
  files: number;
  contextBytes: number;
}

/** Output lines kept for the error of a failing step. */
const STEP_OUTPUT_LINES = 40;

/**
 * `docker build` of a directory. A failing step is a BAD_INPUT error whose
 * message names the step and whose hint holds that step's output.
 */
export async function buildDirectory(
  docker: DockerClient,
  dir: string,
  options: BuildDirectoryOptions = {},
): Promise<BuiltImage> {
  const context = await planBuildContext(dir, options.dockerfile ? { dockerfile: options.dockerfile } : {});
  const tag = options.tag ?? defaultBuildTag(dir);
  const lines: string[] = [];
  try {
    const result = await docker.buildImage(contextTar(context), {
      tag,
      dockerfile: context.dockerfile,
      ...(options.buildArgs ? { buildArgs: options.buildArgs } : {}),
      ...(options.labels ? { labels: options.labels } : {}),
      ...(options.target ? { target: options.target } : {}),
      onOutput: (text) => {
        for (const line of text.split('\n')) {
          lines.push(line);
          if (lines.length > 1000) lines.shift();
        }
        options.onOutput?.(text);
      },
    });
    return {
      imageId: result.imageId,
      tag,
      files: context.entries.filter((e) => e.type === 'file').length,
      contextBytes: context.bytes,
    };
  } catch (err) {
    if (!isDevboxError(err, 'BAD_INPUT')) throw err;
    const step = failingStep(lines);
    const reason = err.message.replace(/^docker build of \S+ failed: /, '');
    throw new DevboxError(
      'BAD_INPUT',
      `Building ${dir} failed${step.title ? ` at ${step.title}` : ''}: ${reason}`,
      { hint: step.output ? `Output of that step:\n${step.output}` : err.hint, cause: err },
    );
  }
}

/** The last `Step n/m : …` line and what the build printed after it. */
export function failingStep(lines: readonly string[]): { title?: string; output?: string } {
  const index = lines.findLastIndex((l) => /^Step \d+\/\d+ : /.test(l));
  if (index < 0) {
    const output = lines
      .filter((l) => l.trim())
      .slice(-STEP_OUTPUT_LINES)
      .join('\n');
    return output ? { output } : {};
  }
  const title = lines[index]?.replace(/ : /, ' (').concat(')');
  const output = lines
    .slice(index + 1)
    .filter((l) => l.trim() && !/^ ---> |^Removing intermediate container /.test(l))
    .slice(-STEP_OUTPUT_LINES)
    .join('\n');
  return output ? { title, output } : { title };
}

/** `devbox-build-<dir name>:latest`, reduced to what a repository name allows. */
export function defaultBuildTag(dir: string): string {
  const name = basename(resolve(dir))
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[._-]+|[._-]+$/g, '');
  return `devbox-build-${name || 'context'}:latest`;
}
