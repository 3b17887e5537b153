/**
 * What the kubelet writes into ConfigMap, Secret, downward API and projected volumes,
 * relative to the volume's root (pkg/volume/{configmap,secret,downwardapi,projected}
 * MakePayload / CollectData), and how it sets modes and owners
 * (pkg/volume/volume_linux.go, with `fsGroup`).
 */
import { posix } from 'node:path';
import type {
  V1ConfigMap,
  V1DownwardAPIVolumeFile,
  V1KeyToPath,
  V1PodSpec,
  V1Secret,
} from '@kubernetes/client-node';
import { DevboxError } from '../../util/errors.js';
import {
  defaultedRequests,
  effectiveLimits,
  fieldRefValue,
  needsLivePod,
  type PodFields,
  type ResourceList,
  resourceFieldRefValue,
} from '../env/downward.js';

/** One file of a volume, before the mount puts it somewhere. */
export interface Projection {
  content: Buffer;
  mode: number;
  /** From a Secret or a service-account token. */
  secret: boolean;
  /** Owner when not root (tokens, with the pod's common runAsUser). */
  uid?: number;
}

/** A volume's files by path relative to its root ("a.txt", "conf/app.yaml"). */
export type Payload = Map<string, Projection>;

/** `defaultMode` as the API server defaults it (420) for all four volume types. */
export const DEFAULT_VOLUME_MODE = 0o644;

/** Mode of directories the atomic writer creates for nested paths (`items[].path: a/b`). */
export const NESTED_DIRECTORY_MODE = 0o755;

/**
 * Mode of the volume's root: ConfigMap volumes live on the node's disk (an emptyDir,
 * 0777), the others on tmpfs (1777).
 */
export function volumeRootMode(type: 'configMap' | 'secret' | 'downwardAPI' | 'projected'): number {
  return type === 'configMap' ? 0o777 : 0o1777;
}

/**
 * The mode after the kubelet's ownership pass for `fsGroup` on a read-only volume:
 * files gain group read, directories group read+execute and setgid.
 */
export function withFsGroup(mode: number, isDirectory: boolean, fsGroup: number | undefined): number {
  if (fsGroup === undefined) return mode;
  return isDirectory ? mode | 0o2550 : mode | 0o440;
}

/** `path` cleaned like Go's filepath.Clean, relative ("./a//b/" → "a/b"). */
export function cleanVolumePath(path: string): string {
  const clean = posix.normalize(path).replace(/\/+$/, '');
  return clean === '.' ? '' : clean.replace(/^\.\//, '');
}

function notFoundKey(message: string): DevboxError {
  return new DevboxError('NOT_FOUND', message);
}

/**
 * Files of a ConfigMap volume or projection: every key of `data` and `binaryData` at its
 * own name, or only `items`, each at its `path` with its own `mode`. A listed key that is
 * missing is skipped when `optional`, else an error with the kubelet's wording.
 */
export function configMapPayload(
  configMap: V1ConfigMap,
  items: readonly V1KeyToPath[] | undefined,
  defaultMode: number,
  optional: boolean,
): Payload {
  const data = configMap.data ?? {};
  const binary = configMap.binaryData ?? {};
  return keyedPayload({
    keys: [...Object.keys(data), ...Object.keys(binary)],
    contentOf: (key) => {
      if (Object.hasOwn(data, key)) return Buffer.from(data[key] as string, 'utf8');
      if (Object.hasOwn(binary, key)) return Buffer.from(binary[key] as string, 'base64');
      return undefined;
    },
    items,
    defaultMode,
    optional,
    secret: false,
    missing: (key) => `configmap references non-existent config key: ${key}`,
  });
}

/** Files of a Secret volume or projection; the same rules as {@link configMapPayload}. */
export function secretPayload(
  secret: V1Secret,
  items: readonly V1KeyToPath[] | undefined,
  defaultMode: number,
  optional: boolean,
): Payload {
  const data = secret.data ?? {};
  return keyedPayload({
    keys: Object.keys(data),
    contentOf: (key) => (Object.hasOwn(data, key) ? Buffer.from(data[key] as string, 'base64') : undefined),
    items,
    defaultMode,
    optional,
    secret: true,
    missing: (key) => `references non-existent secret key: ${key}`,
  });
}

/** Every key under its own name, or only `items` at their paths; the rule both sources share. */
function keyedPayload(source: {
  keys: string[];
  contentOf: (key: string) => Buffer | undefined;
  items: readonly V1KeyToPath[] | undefined;
  defaultMode: number;
  optional: boolean;
  secret: boolean;
  /** The kubelet's wording for a listed key that is missing. */
  missing: (key: string) => string;
}): Payload {
  const { contentOf, defaultMode, secret } = source;
  const payload: Payload = new Map();
  if (!source.items?.length) {
    for (const key of source.keys)
      payload.set(key, { content: contentOf(key) as Buffer, mode: defaultMode, secret });
    return payload;
  }
  for (const item of source.items) {
    const content = contentOf(item.key);
    if (content === undefined) {
      if (source.optional) continue;
      throw notFoundKey(source.missing(item.key));
    }
    payload.set(cleanVolumePath(item.path), { content, mode: item.mode ?? defaultMode, secret });
  }
  return payload;
}

/** What downward API files read. */
export interface DownwardContext {
  /** The pod whose metadata fieldRefs read (the running pod when there is one). */
  pod: PodFields;
  /** False when `pod` is only a template: name and uid are then unknown. */
  live: boolean;
  /** The pod spec holding the containers resourceFieldRefs read. */
  spec: V1PodSpec;
  /** Used when a resourceFieldRef names no container (the API requires one in volumes). */
  container: string;
  /** The node's allocatable resources, for limits the container does not set; undefined when unknown. */
  nodeAllocatable: ResourceList | undefined;
}

/**
 * Files of a downward API volume or projection. Values the kubelet would know but devbox
 * cannot (a template's pod name, a limit taken from an unreadable Node) are left out with
 * a warning each; invalid references throw as the kubelet fails.
 */
export function downwardPayload(
  items: readonly V1DownwardAPIVolumeFile[] | undefined,
  ctx: DownwardContext,
  defaultMode: number,
  warnings: string[],
): Payload {
  const payload: Payload = new Map();
  for (const item of items ?? []) {
    const path = cleanVolumePath(item.path);
    const mode = item.mode ?? defaultMode;
    let value: string | undefined;
    if (item.fieldRef) {
      const field = item.fieldRef.fieldPath;
      if (!ctx.live && needsLivePod(field)) {
        warnings.push(`downward API file ${path} reads ${field}, which needs a running pod; it is left out`);
        continue;
      }
      if (!ctx.live && (field === 'metadata.labels' || field === 'metadata.annotations')) {
        warnings.push(
          `downward API file ${path}: ${field} read from the pod template, without what controllers add to a running pod`,
        );
      }
      if (ctx.live && (field === 'metadata.annotations' || field.includes("['kubernetes.io/config.seen']"))) {
        warnings.push(
          `downward API file ${path}: the kubelet's kubernetes.io/config.seen annotation is approximated by the pod's start time`,
        );
      }
      value = fieldRefValue(item.fieldRef, ctx.pod);
    } else if (item.resourceFieldRef) {
      value = resourceFileValue(path, item, ctx, warnings);
      if (value === undefined) continue;
    } else {
      value = '';
    }
    payload.set(path, { content: Buffer.from(value, 'utf8'), mode, secret: false });
  }
  return payload;
}

function resourceFileValue(
  path: string,
  item: V1DownwardAPIVolumeFile,
  ctx: DownwardContext,
  warnings: string[],
): string | undefined {
  const ref = item.resourceFieldRef;
  if (!ref) return undefined;
  const name = ref.containerName || ctx.container;
  const target =
    ctx.spec.containers.find((c) => c.name === name) ?? ctx.spec.initContainers?.find((c) => c.name === name);
  if (!target) throw new DevboxError('NOT_FOUND', `container ${name} not found`);
  // Unlike env, volumes merge the node's allocatable into init containers' limits too.
  const { limits, unknown } = effectiveLimits(target, ctx.spec, ctx.nodeAllocatable);
  const resource = ref.resource.replace(/^limits\./, '');
  if (ref.resource.startsWith('limits.') && unknown.includes(resource)) {
    warnings.push(
      `downward API file ${path}: container ${name} sets no ${resource} limit, so the kubelet writes the node's allocatable ${resource}, which could not be read; the file is left out`,
    );
    return undefined;
  }
  return resourceFieldRefValue(ref, defaultedRequests(target), limits);
}
