/**
 * The workspace mount is the one bind mount of a dev container, and its
 * source is a path on the Docker engine's machine. Three cases:
 *
 * - the engine sees this machine's files (the usual case): the Dev Containers
 *   CLI mounts the folder as always;
 * - devbox runs in a container that has the engine's socket: the folder's
 *   path is translated through that container's mounts to the host's path;
 * - the engine cannot see the folder (another machine, or a daemon with its
 *   own file system view): the folder is copied into a named volume, once,
 *   and the dev container works on that copy.
 *
 * Which case holds is not guessed from DOCKER_HOST: a probe container mounts
 * the folder and reads the devcontainer.json back through the engine.
 */
import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { basename, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import tar from 'tar-stream';
import {
  contextFilter,
  type DockerClient,
  isRemoteEngine,
  parseDockerignore,
  resolveBindMounts,
} from '../docker/index.js';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';
import type { LoadedDevcontainer } from './config.js';

/** Label on a workspace copy volume: the folder it was copied from. */
export const WORKSPACE_LABEL = 'devbox.workspace';

export type WorkspacePlacement =
  /** The CLI's own mount (or the config's `workspaceMount`) is used unchanged. */
  | { mode: 'as-is'; notes: string[] }
  | { mode: 'translated' | 'copied'; mount: string; folder: string; notes: string[] };

/** Where the workspace appears in the dev container when devbox mounts it. */
export function workspaceTarget(loaded: LoadedDevcontainer): string {
  const folder = loaded.config.workspaceFolder;
  return typeof folder === 'string' && folder.startsWith('/')
    ? folder
    : `/workspaces/${basename(loaded.workspaceFolder)}`;
}

/** A project folder to get into a dev container. */
export interface WorkspaceInput {
  /** The folder on this machine. */
  folder: string;
  /** A file in it, read back through the engine to tell whether the engine sees the folder. */
  sample: string;
  /** Where it appears in the container. */
  target: string;
  /** The configuration sets its own workspaceMount: it is used as it is. */
  userMount: boolean;
}

/**
 * Decides how the workspace of a devcontainer.json reaches the dev container
 * on `docker`'s engine. `probeImage` is any image present on the engine (the
 * runtime image).
 */
export function placeWorkspace(
  docker: DockerClient,
  loaded: LoadedDevcontainer,
  probeImage: string,
): Promise<WorkspacePlacement> {
  return placeFolder(
    docker,
    {
      folder: loaded.workspaceFolder,
      sample: loaded.configFile,
      target: workspaceTarget(loaded),
      userMount: typeof loaded.config.workspaceMount === 'string',
    },
    probeImage,
  );
}

/** Decides how `input.folder` reaches a container on `docker`'s engine (see the module comment). */
export async function placeFolder(
  docker: DockerClient,
  input: WorkspaceInput,
  probeImage: string,
): Promise<WorkspacePlacement> {
  if (input.userMount) return { mode: 'as-is', notes: [] };
  const { folder: local, target: folder } = input;
  const sample = relative(local, input.sample).split(sep).join('/');
  const expected = await fs.readFile(input.sample);

  let hostPath: string | undefined = local;
  let translated = false;
  try {
    const resolved = await resolveBindMounts(docker, [{ source: local, target: folder }]);
    hostPath = resolved.mounts[0]?.source;
    translated = resolved.mode === 'container';
  } catch (err) {
    // Inside a container whose mounts do not hold the folder: the engine cannot see it.
    if (!isDevboxError(err, 'BAD_INPUT')) throw err;
    hostPath = undefined;
  }
  if (hostPath && (await engineSees(docker, probeImage, hostPath, sample, expected))) {
    if (!translated) return { mode: 'as-is', notes: [] };
    return {
      mode: 'translated',
      mount: `type=bind,source=${hostPath},target=${folder}`,
      folder,
      notes: [`the workspace ${local} is mounted from the engine's path ${hostPath}`],
    };
  }
  const copy = await copyWorkspace(docker, local, probeImage);
  const where = isRemoteEngine(docker.endpoint)
    ? `the engine at ${docker.endpoint.host}`
    : `the engine (${docker.endpoint.host})`;
  return {
    mode: 'copied',
    mount: `type=volume,source=${copy.volume},target=${folder}`,
    folder,
    notes: [
      copy.created
        ? `${where} cannot see ${local}: it was copied into the volume ${copy.volume}; edits in the dev container stay there`
        : `${where} cannot see ${local}: using its copy in the volume ${copy.volume} (remove the volume to copy the folder afresh)`,
    ],
  };
}

/** True when a container on the engine that mounts `hostPath` reads `sample` with the content `expected`. */
export async function engineSees(
  docker: DockerClient,
  image: string,
  hostPath: string,
  sample: string,
  expected: Buffer,
): Promise<boolean> {
  let id: string;
  try {
    id = await docker.createContainer({
      image,
      cmd: ['probe'],
      labels: { 'devbox.probe': 'workspace' },
      mounts: [{ type: 'bind', source: hostPath, target: '/devbox-probe', readOnly: true }],
    });
  } catch (err) {
    if (/bind source path does not exist|not a directory|invalid mount config/i.test(errorText(err)))
      return false;
    throw err;
  }
  try {
    const archive = await docker.getArchive(id, `/devbox-probe/${sample}`);
    const content = await firstFile(archive);
    return content?.equals(expected) === true;
  } catch (err) {
    if (isDevboxError(err, 'NOT_FOUND')) return false;
    throw err;
  } finally {
    await docker.removeContainer(id, { force: true }).catch(() => {});
  }
}

async function firstFile(archive: Readable): Promise<Buffer | undefined> {
  const extract = tar.extract();
  let found: Buffer | undefined;
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        if (found === undefined && header.type === 'file') found = Buffer.concat(chunks);
        next();
      });
      stream.on('error', reject);
    });
    extract.on('finish', resolve);
    extract.on('error', reject);
  });
  archive.pipe(extract);
  await done;
  return found;
}

/** Name of the volume holding a copy of `folder` for the engine `host`. */
export function workspaceVolumeName(host: string, folder: string): string {
  const digest = createHash('sha256').update(`${host}\n${folder}`).digest('hex').slice(0, 12);
  const base =
    basename(folder)
      .replace(/[^a-zA-Z0-9_.-]+/g, '-')
      .replace(/^[-_.]+/, '')
      .slice(0, 40) || 'workspace';
  return `devbox-workspace-${base}-${digest}`;
}

/**
 * Copies `folder` (honouring its `.dockerignore`) into a named volume, unless
 * a copy exists already: the dev container's edits live there and are kept.
 */
export async function copyWorkspace(
  docker: DockerClient,
  folder: string,
  image: string,
): Promise<{ volume: string; created: boolean }> {
  const volume = workspaceVolumeName(docker.endpoint.host, folder);
  const existing = await docker.listVolumes({ labels: { [WORKSPACE_LABEL]: folder } });
  if (existing.some((v) => v.name === volume)) return { volume, created: false };
  await docker.createVolume(volume, { labels: { [WORKSPACE_LABEL]: folder } });
  let helper: string | undefined;
  try {
    helper = await docker.createContainer({
      image,
      cmd: ['copy'],
      labels: { 'devbox.probe': 'workspace-copy' },
      mounts: [{ type: 'volume', source: volume, target: '/workspace' }],
    });
    await docker.putArchive(helper, '/workspace', await folderTar(folder));
    return { volume, created: true };
  } catch (err) {
    await docker.removeVolume(volume, { force: true }).catch(() => {});
    throw new DevboxError(
      'INTERNAL',
      `Could not copy ${folder} into the volume ${volume}: ${errorText(err)}`,
      {
        cause: err,
      },
    );
  } finally {
    if (helper) await docker.removeContainer(helper, { force: true }).catch(() => {});
  }
}

/** A tar of `folder`'s files, directories and symlinks, without what its `.dockerignore` excludes. */
export async function folderTar(folder: string): Promise<Readable> {
  const ignore = await fs.readFile(join(folder, '.dockerignore'), 'utf8').catch(() => '');
  const filter = contextFilter(parseDockerignore(ignore));
  const pack = tar.pack();
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => a.name.localeCompare(b.name));
    for (const entry of entries) {
      const name = prefix ? `${prefix}/${entry.name}` : entry.name;
      const path = join(dir, entry.name);
      const excluded = filter.excludes(name);
      const stat = await fs.lstat(path);
      const header = { name, mode: stat.mode & 0o7777, mtime: stat.mtime, uid: stat.uid, gid: stat.gid };
      if (stat.isDirectory()) {
        if (excluded && !filter.mustWalk(name)) continue;
        if (!excluded) pack.entry({ ...header, type: 'directory' });
        await walk(path, name);
      } else if (excluded) {
      } else if (stat.isSymbolicLink()) {
        pack.entry({ ...header, type: 'symlink', linkname: await fs.readlink(path) });
      } else if (stat.isFile()) {
        await new Promise<void>((resolve, reject) => {
          const sink = pack.entry({ ...header, type: 'file', size: stat.size }, (err) =>
            err ? reject(err) : resolve(),
          );
          const source = createReadStream(path);
          source.on('error', reject);
          source.pipe(sink);
        });
      }
    }
  };
  // Packing runs while the engine reads the stream; failures end it with an error.
  walk(folder, '').then(
    () => pack.finalize(),
    (err) => pack.destroy(err as Error),
  );
  return pack as unknown as Readable;
}
