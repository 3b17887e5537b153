/**
 * Ensures the images the local test cluster needs and prints their tags as
 * one JSON line on stdout: `{"runtime": "...", "busybox": "...", "pause": "..."}`.
 * Progress and errors go to stderr. Used by the cluster scripts.
 */

import { createDockerClient } from '../../src/docker/client.js';
import { ensureBusyboxImage, ensurePauseImage, ensureRuntimeImage } from '../../src/docker/runtime-image.js';
import { errorText, isDevboxError } from '../../src/util/errors.js';
import { createProgress } from '../../src/util/progress.js';

async function main(): Promise<void> {
  const progress = createProgress(process.stderr);
  const docker = createDockerClient();
  await docker.ping();
  const runtime = await ensureRuntimeImage(docker, { progress });
  const busybox = await ensureBusyboxImage(docker, { progress });
  const pause = await ensurePauseImage(docker, { progress });
  for (const image of [runtime, busybox, pause]) {
    const size = image.layerBytes === undefined ? '' : `, ${(image.layerBytes / 1e6).toFixed(1)} MB`;
    progress.note(
      `${image.tag} ${image.reused ? 'already loaded' : 'loaded'} (${(image.durationMs / 1000).toFixed(1)}s${size})`,
    );
  }
  process.stdout.write(
    `${JSON.stringify({ runtime: runtime.tag, busybox: busybox.tag, pause: pause.tag })}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`error: ${errorText(err)}\n`);
  if (isDevboxError(err) && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exitCode = 1;
});
