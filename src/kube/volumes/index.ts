/**
 * A container's volumes as files at the pod's mount paths, laid out as the kubelet
 * lays them out; copies of storage mounts through the agent; and following the
 * cluster objects they read so the local files stay current.
 */
export {
  type CopyMountOptions,
  type CopyTarget,
  type FilesSource,
  layoutTar,
  mountContentsTar,
  readTarEntries,
  type TarEntry,
} from './copy.js';
export {
  type FollowVolumesOptions,
  followVolumes,
  type VolumeChange,
  type VolumeFollowClient,
} from './follow.js';
export {
  clusterVolumeLookup,
  type LiveVolumesOptions,
  nodeAllocatable,
  podVolumesInput,
  resolvePodVolumes,
  resolveWorkloadVolumes,
  type VolumeClient,
  workloadVolumesInput,
} from './live.js';
export {
  type MountLayout,
  type ResolveVolumesInput,
  resolveVolumes,
  SERVICE_ACCOUNT_MOUNT_PATH,
  type VolumeCopy,
  type VolumeDirectory,
  type VolumeFile,
  type VolumeLayout,
  type VolumeLookup,
  type VolumeToken,
} from './resolve.js';
