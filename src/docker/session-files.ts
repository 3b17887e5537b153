/**
 * Files travel into session containers as tar streams through the engine
 * (`putArchive`), never as bind mounts, so a remote engine and a dev container
 * work the same as a local one.
 */
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import { DevboxError } from '../util/errors.js';
import type { DockerClient } from './client.js';
import type { InjectedFile, InjectedFiles } from './session-spec.js';

/**
 * A tar stream of `files`, entry names relative to `/`. Only files are
 * written: directories that already exist keep their owner and mode, and the
 * engine creates missing parents (root, 0755).
 */
export function filesTar(files: readonly InjectedFile[], mtime: Date = new Date()): Readable {
  const entries = files.map((file) => ({ file, name: tarName(file.path) }));
  const pack = tar.pack();
  for (const { file, name } of entries) {
    const content = typeof file.content === 'string' ? Buffer.from(file.content) : file.content;
    pack.entry(
      {
        name,
        type: 'file',
        size: content.length,
        mode: file.mode ?? 0o644,
        uid: file.uid ?? 0,
        gid: file.gid ?? 0,
        mtime,
      },
      content,
    );
  }
  pack.finalize();
  return Readable.from(pack);
}

/** `/etc/app/x.yaml` → `etc/app/x.yaml`; relative, `..` or directory paths are refused. */
export function tarName(path: string): string {
  const clean = posix.normalize(path);
  if (!path.startsWith('/') || path.endsWith('/') || clean !== path)
    throw new DevboxError(
      'BAD_INPUT',
      `Injected file path must be an absolute, normalized file path: ${path}`,
    );
  return clean.slice(1);
}

/** Copies files (or a tar stream extracted at `/`) into a container, before or after it starts. */
export async function putFiles(
  docker: DockerClient,
  containerId: string,
  files: InjectedFiles,
): Promise<void> {
  if (isTarSource(files)) {
    await docker.putArchive(containerId, '/', files.tar);
    return;
  }
  if (files.length === 0) return;
  await docker.putArchive(containerId, '/', filesTar(files));
}

function isTarSource(files: InjectedFiles): files is { tar: Readable } {
  return !Array.isArray(files) && typeof (files as { tar?: unknown }).tar === 'object';
}

/** How `updateFiles` replaced the files. */
export interface UpdatedFiles {
  /** True when each file was written beside its target and renamed over it (readers never see a partial file). */
  atomic: boolean;
  files: number;
}

const TMP_SUFFIX = '.devbox-new';

/** Ways to rename a file inside a container, tried in order: coreutils/busybox `mv`, else Node (devbox's own images). */
const RENAMERS: { probe: string[]; rename: (from: string, to: string) => string[] }[] = [
  { probe: ['mv', '--help'], rename: (from, to) => ['mv', '-f', from, to] },
  {
    probe: ['node', '--version'],
    rename: (from, to) => [
      'node',
      '-e',
      'require("fs").renameSync(process.argv[1], process.argv[2])',
      from,
      to,
    ],
  },
];

/**
 * Re-copies changed files into a running container (ConfigMaps and Secrets
 * that changed in the cluster, a refreshed token). Each file is written next
 * to its target and renamed over it inside the container (with `mv`, or
 * `node` in devbox's images), so readers see the old or the new content,
 * never a mix; images with neither get a direct overwrite (`atomic: false`).
 * A tar stream is extracted as it is: lay it out like the kubelet (`..data`
 * symlink swap) for atomic directories.
 */
export async function updateFiles(
  docker: DockerClient,
  containerId: string,
  files: InjectedFiles,
  options: { signal?: AbortSignal } = {},
): Promise<UpdatedFiles> {
  if (isTarSource(files)) {
    await docker.putArchive(containerId, '/', files.tar);
    return { atomic: false, files: 0 };
  }
  if (files.length === 0) return { atomic: true, files: 0 };
  for (const file of files) tarName(file.path);

  const run = (cmd: string[]) => docker.exec(containerId, cmd, { user: '0', timeoutMs: 10_000, ...options });
  let renamer: (typeof RENAMERS)[number] | undefined;
  for (const candidate of RENAMERS) {
    if (!cannotStart((await run(candidate.probe)).exitCode)) {
      renamer = candidate;
      break;
    }
  }
  if (!renamer) {
    await docker.putArchive(containerId, '/', filesTar(files));
    return { atomic: false, files: files.length };
  }
  const staged = files.map((file) => ({ ...file, path: stagedPath(file.path) }));
  await docker.putArchive(containerId, '/', filesTar(staged));
  for (const [i, file] of files.entries()) {
    const moved = await run(renamer.rename(staged[i]?.path ?? '', file.path));
    if (moved.exitCode !== 0)
      throw new DevboxError(
        'INTERNAL',
        `Could not replace ${file.path} in container ${containerId}: ${(moved.stderr || moved.stdout).trim()}`,
      );
  }
  return { atomic: true, files: files.length };
}

/** `/etc/app/x.yaml` → `/etc/app/.x.yaml.devbox-new` (same directory, so the rename is atomic). */
export function stagedPath(path: string): string {
  return posix.join(posix.dirname(path), `.${posix.basename(path)}${TMP_SUFFIX}`);
}

/** Exit codes of a command that could not be started (not found / not executable). */
function cannotStart(exitCode: number): boolean {
  return exitCode === 126 || exitCode === 127;
}
