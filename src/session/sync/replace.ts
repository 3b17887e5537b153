/**
 * `--on-change rebuild`: the image is built again and only the service
 * container is replaced. The sidecar (which owns the network namespace, the
 * tunnel and the intercept) stays; the new container joins it as the old one
 * did. The old container serves until the new one is ready to start, and keeps
 * serving when the build or the new container fails.
 */
import { posix } from 'node:path';
import type { DockerClient } from '../../docker/index.js';
import { errorText } from '../../util/errors.js';

/** Paths the old container added to its image that the new one needs too (the pod's volume files, its state). */
export function pathsToCarry(
  changes: readonly { path: string; kind: 'A' | 'C' | 'D' }[],
  skip: readonly string[],
): string[] {
  const added = new Set(changes.filter((c) => c.kind === 'A').map((c) => c.path));
  const under = (path: string, root: string) =>
    path === root || path.startsWith(root === '/' ? '/' : `${root}/`);
  return [...added]
    .filter((path) => !added.has(posix.dirname(path)) || posix.dirname(path) === path)
    .filter((path) => !skip.some((root) => under(path, root)))
    .sort();
}

export interface ReplaceOptions {
  /** Image of the new container. */
  image: string;
  /** Container paths the caller fills itself (sync targets): not carried over. */
  skip: readonly string[];
  /** Fills the new container before it starts (the synced files). */
  fill: (id: string) => Promise<void>;
  onWarning: (text: string) => void;
  /** Wraps the moments the app is down: the old container's stop until the new one's start. */
  whileSwapping?: (swap: () => Promise<void>) => Promise<void>;
}

/** Replaces the container `oldId` by one from `image` with the same settings; returns the new id. */
export async function replaceServiceContainer(
  docker: DockerClient,
  oldId: string,
  options: ReplaceOptions,
): Promise<string> {
  const spec = await docker.containerSpec(oldId);
  if (!spec) throw new Error(`the service container ${oldId} is gone`);
  const name = spec.name ?? '';
  const nextName = `${name}.next`;
  await docker.removeContainer(nextName, { force: true });
  const newId = await docker.createContainer({ ...spec, image: options.image, name: nextName });
  try {
    const carry = pathsToCarry(await docker.containerChanges(oldId), options.skip);
    for (const path of carry) {
      try {
        await docker.putArchive(newId, posix.dirname(path), await docker.getArchive(oldId, path));
      } catch (err) {
        options.onWarning(`${path} was not carried over to the new container: ${errorText(err)}`);
      }
    }
    await options.fill(newId);
  } catch (err) {
    await docker.removeContainer(newId, { force: true }).catch(() => {});
    throw err;
  }
  // From here on the old container stops: in-cluster callers get the pod's own app meanwhile.
  const swap = async () => {
    await docker.stopContainer(oldId, { timeoutSeconds: 2 });
    await docker.removeContainer(oldId, { force: true });
    await docker.renameContainer(newId, name);
    await docker.startContainer(newId);
  };
  await (options.whileSwapping ?? ((run) => run()))(swap);
  return newId;
}
