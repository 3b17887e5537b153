/**
 * The dev loop's file sync against a Docker engine reached over tcp that cannot
 * see this machine's files: the same cases as on the local engine.
 */
import { after, before, describe, it } from 'node:test';
import { createDockerClient, type DockerClient } from '../../../src/docker/client.js';
import { processEndpointInputs } from '../../../src/docker/endpoint.js';
import { ensureRuntimeImage } from '../../../src/docker/runtime-image.js';
import { removeSyncContainers, syncChangeAndDeletion, syncRebuild } from '../../support/sync-cases.js';
import { type SecondEngine, startSecondEngine } from './dockerd.js';

describe('sync on a remote engine (tcp, its own file system)', { timeout: 600_000 }, () => {
  let engine: SecondEngine;
  let docker: DockerClient;
  let runtimeImage = '';

  before(async () => {
    runtimeImage = (await ensureRuntimeImage(createDockerClient())).tag;
    engine = await startSecondEngine();
    await engine.load(runtimeImage);
    docker = createDockerClient({ inputs: { ...processEndpointInputs(), env: engine.env } });
    await docker.ping();
  });
  after(async () => {
    if (docker) await removeSyncContainers(docker);
    await engine?.stop();
  });

  it('copies everything first, then a change and a deletion', () =>
    syncChangeAndDeletion({ docker, runtimeImage, name: 'devbox-sync-rd-change' }));
  it('rebuilds on the remote engine and replaces only the container', () =>
    syncRebuild({ docker, runtimeImage, name: 'devbox-sync-rd-rebuild' }));
});
