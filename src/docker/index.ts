/** Public surface of the Docker domain: the engine client and the images devbox builds itself. */
export {
  type BuildContext,
  type BuildDirectoryOptions,
  type BuiltImage,
  buildDirectory,
  type ContextEntry,
  type ContextFilter,
  contextFilter,
  contextTar,
  parseDockerignore,
  planBuildContext,
} from './build-context.js';
export {
  type BuildOptions,
  type BuildResult,
  type ContainerInfo,
  type ContainerMount,
  type ContainerSpec,
  type ContainerSummary,
  createDockerClient,
  type DockerClient,
  type DockerClientOptions,
  type EngineVersion,
  type ExecOptions,
  type ExecResult,
  type ImageInfo,
  type LogOptions,
  type MountSpec,
  type PortBinding,
  specFromInspect,
  type VolumeSummary,
} from './client.js';
export { type DockerEndpoint, describeSource, resolveDockerEndpoint } from './endpoint.js';
export type { HostBinary } from './host-files.js';
export {
  type BindMount,
  findOwnContainer,
  type HostProbe,
  isRemoteEngine,
  type ResolvedBindMounts,
  resolveBindMounts,
} from './host-paths.js';
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
export {
  type CreatedSession,
  type CreateSessionOptions,
  createSession,
  findSessions,
  type RemovedSession,
  readSidecarBundle,
  removeSession,
  type SessionContainer,
  type SessionFilter,
  sidecarBundlePath,
} from './session-containers.js';
export { filesTar, putFiles, type UpdatedFiles, updateFiles } from './session-files.js';
export { parsePublishFlag, parseVolumeFlag } from './session-flags.js';
export { followLogs, waitExit } from './session-logs.js';
export {
  lastLogLines,
  readSidecarStatus,
  type SidecarReadiness,
  type SidecarStatus,
  sidecarReadiness,
  type WaitReadyOptions,
  waitSidecarReady,
} from './session-ready.js';
export {
  containerNames,
  groupSessions,
  type InjectedFile,
  type InjectedFiles,
  newSessionId,
  SESSION_LABELS,
  type ServiceOptions,
  type SessionContainerSummary,
  type SessionIdentity,
  type SessionRole,
  type SessionSpec,
  type SessionSummary,
  SIDECAR_BUNDLE_PATH,
  SIDECAR_CONFIG_PATH,
  type SidecarOptions,
} from './session-spec.js';
export { demuxDockerStream } from './streams.js';
