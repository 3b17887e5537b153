/** The dev loop's file sync against the local Docker engine (no cluster needed). */
import { after, before, describe, it } from 'node:test';
import { createDockerClient } from '../../../src/docker/client.js';
import { ensureRuntimeImage } from '../../../src/docker/runtime-image.js';
import {
  removeSyncContainers,
  syncChangeAndDeletion,
  syncRebuild,
  syncRestart,
} from '../../support/sync-cases.js';

const docker = createDockerClient();
let runtimeImage = '';

before(async () => {
  await docker.ping();
  runtimeImage = (await ensureRuntimeImage(docker)).tag;
});
after(() => removeSyncContainers(docker));

describe('sync on the local engine', () => {
  it('copies everything first, then a change and a deletion', () =>
    syncChangeAndDeletion({ docker, runtimeImage, name: 'devbox-sync-it-change' }));
  it('restarts the container after a change with --on-change restart', () =>
    syncRestart({ docker, runtimeImage, name: 'devbox-sync-it-restart' }));
  it('rebuilds and replaces only the container; a failed build keeps it running', () =>
    syncRebuild({ docker, runtimeImage, name: 'devbox-sync-it-rebuild' }));
});
