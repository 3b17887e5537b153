/** The Docker engine, reached once per command with a progress step. */
import type { Progress } from '../util/progress.js';
import { createDockerClient, type DockerClient } from './client.js';

export async function connectDocker(progress: Progress): Promise<DockerClient> {
  const docker = createDockerClient();
  await progress.step('Connecting to Docker', () => docker.ping({ timeoutMs: 10_000 }));
  return docker;
}
