/** Public surface of the Docker domain: the engine client and the images devbox builds itself. */
export {
  type BuildOptions,
  type BuildResult,
  type ConnectOptions,
  type ContainerInfo,
  type ContainerSpec,
  type ContainerSummary,
  connectDocker,
  type DockerClient,
  type EngineVersion,
  type ImageInfo,
  type LogOptions,
  type MountSpec,
  type PortBinding,
  type VolumeSummary,
} from './client.js';
export { type DockerEndpoint, describeSource, resolveDockerEndpoint } from './endpoint.js';
export type { HostBinary } from './host-files.js';
export { type ImageConfig, type LayerEntry, type PlannedImage, planImage } from './image-archive.js';
export {
  type BusyboxImageOptions,
  type EnsuredImage,
  ensureBusyboxImage,
  ensurePauseImage,
  ensureRuntimeImage,
  NODE_UID,
  type PauseImageOptions,
  type RuntimeImageOptions,
} from './runtime-image.js';
export { demuxDockerStream } from './streams.js';
