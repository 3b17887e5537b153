/**
 * Changes travel into the container through the Docker API: written files as a
 * tar extracted at `/` (`putArchive`), deletions as one `rm -rf` (or, in images
 * without a shell's tools, Node) run with `exec`. No bind mount, so a remote
 * engine behaves like a local one.
 */
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tar from 'tar-stream';
import type { DockerClient } from '../../docker/index.js';
import { DevboxError, errorText } from '../../util/errors.js';
import { type ChangeSet, containerPath, type Snapshot } from './changes.js';
import type { SyncRule } from './rules.js';

/** A rule's change set, ready to apply. */
export interface RuleChanges {
  rule: SyncRule;
  snapshot: Snapshot;
  changes: ChangeSet;
}

/** Owners are root, as `docker cp` does; modes and times are the local ones. */
export function changesTar(sets: readonly RuleChanges[]): Readable {
  const pack = tar.pack();
  (async () => {
    for (const { rule, snapshot, changes } of sets) {
      for (const path of changes.upserts) {
        const entry = snapshot.get(path);
        if (!entry) continue;
        const name = containerPath(rule, path).slice(1);
        const header = { name, mode: entry.mode, mtime: new Date(entry.mtimeMs), uid: 0, gid: 0 };
        if (entry.type === 'directory') pack.entry({ ...header, type: 'directory' });
        else if (entry.type === 'symlink')
          pack.entry({ ...header, type: 'symlink', linkname: entry.linkname ?? '' });
        else await packFile(pack, header, path ? join(rule.local, path) : rule.local);
      }
    }
    pack.finalize();
  })().catch((err) =>
    pack.destroy(
      new DevboxError('BAD_INPUT', `Cannot read a synced file: ${errorText(err)}`, {
        hint: 'A file changed or became unreadable while it was sent; the next change sends it again.',
        cause: err,
      }),
    ),
  );
  return Readable.from(pack);
}

/** Streams one file; its size is what is read now (it may have changed since the snapshot). */
async function packFile(
  pack: tar.Pack,
  header: { name: string; mode: number; mtime: Date; uid: number; gid: number },
  path: string,
): Promise<void> {
  const content = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    createReadStream(path)
      .on('data', (c) => chunks.push(c as Buffer))
      .on('end', () => resolve(Buffer.concat(chunks)))
      .on('error', reject);
  });
  await new Promise<void>((resolve, reject) =>
    pack.entry({ ...header, type: 'file', size: content.length }, content, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
}

/** Container paths to delete, for all rules. */
export function deletionPaths(sets: readonly RuleChanges[]): string[] {
  return sets.flatMap(({ rule, changes }) => changes.deletions.map((path) => containerPath(rule, path)));
}

/** Ways to delete, tried in order: `rm` (coreutils, busybox), else Node. */
const REMOVERS: ((paths: string[]) => string[])[] = [
  (paths) => ['rm', '-rf', '--', ...paths],
  (paths) => [
    'node',
    '-e',
    'for (const p of process.argv.slice(1)) require("fs").rmSync(p, { recursive: true, force: true })',
    ...paths,
  ],
];

/** Deletes container paths (missing ones are fine). A container with neither `rm` nor `node` is a BAD_INPUT error. */
export async function deleteInContainer(
  docker: DockerClient,
  id: string,
  paths: readonly string[],
): Promise<void> {
  if (paths.length === 0) return;
  let last = '';
  for (const remover of REMOVERS) {
    const result = await docker.exec(id, remover([...paths]), { user: '0' });
    if (result.exitCode === 0) return;
    last = (result.stderr || result.stdout).trim();
    if (result.exitCode !== 126 && result.exitCode !== 127) break;
  }
  throw new DevboxError('BAD_INPUT', `Cannot delete ${paths.join(', ')} in the service container: ${last}`, {
    hint: 'Deleting synced files needs `rm` or `node` in the image.',
  });
}

/** Applies the change sets: deletions first (a file may have become a directory), then the written files. */
export async function applyChanges(
  docker: DockerClient,
  id: string,
  sets: readonly RuleChanges[],
): Promise<void> {
  await deleteInContainer(docker, id, deletionPaths(sets));
  if (sets.some((s) => s.changes.upserts.length)) await docker.putArchive(id, '/', changesTar(sets));
}
