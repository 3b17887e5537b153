/**
 * A container's volumes as files for a local container, laid out at the same mount
 * paths as the kubelet lays them out in the pod:
 *
 * - ConfigMap, Secret, downward API and projected volumes become files (content, mode,
 *   owner), with `items`, per-item `mode`, `defaultMode`, `optional`, `subPath` and the
 *   `fsGroup` ownership pass applied. Plain files stand where the kubelet puts
 *   `..data` symlinks: the paths the app opens and what `stat` shows through them are
 *   the same.
 * - The service-account token mount (`kube-api-access-*`) is an ordinary projected
 *   volume in a running pod; for a pod template it is added as the ServiceAccount
 *   admission plugin would, unless `automountServiceAccountToken` is false on the pod
 *   or its ServiceAccount. Tokens come from TokenRequest for the pod's ServiceAccount.
 * - emptyDir, PVC, hostPath and other storage volumes are listed as copies: their
 *   contents live in the pod and are read through the agent, which mounts the app's
 *   volumes read-only under AGENT_POD_FILES_ROOT.
 *
 * Everything that makes the result differ from the pod is reported as a warning; what
 * would keep the pod from starting (a missing non-optional ConfigMap, Secret or key) is
 * an error naming the volume and the object, worded like the kubelet's event.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import type {
  V1ConfigMap,
  V1Container,
  V1PodSpec,
  V1Secret,
  V1ServiceAccount,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { DevboxError, errorText } from '../../util/errors.js';
import { KubeApiError } from '../api/errors.js';
import type { MintedToken } from '../client.js';
import type { PodFields, ResourceList } from '../env/downward.js';
import { expandReferences } from '../env/expansion.js';
import type { PodLike } from '../env/resolve.js';
import { AGENT_POD_FILES_ROOT } from '../intercept.js';
import { podContainer } from '../pod-container.js';
import {
  cleanVolumePath,
  configMapPayload,
  DEFAULT_VOLUME_MODE,
  type DownwardContext,
  downwardPayload,
  NESTED_DIRECTORY_MODE,
  type Payload,
  type Projection,
  secretPayload,
  volumeRootMode,
  withFsGroup,
} from './payload.js';

/** Where the ServiceAccount admission plugin mounts the API credentials. */
export const SERVICE_ACCOUNT_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
/** Name prefix of the projected volume the admission plugin adds. */
export const SERVICE_ACCOUNT_VOLUME_PREFIX = 'kube-api-access-';
/** The ConfigMap every namespace gets with the cluster's CA (`ca.crt`). */
export const ROOT_CA_CONFIGMAP = 'kube-root-ca.crt';
/** Lifetime the admission plugin asks for the default token. */
export const DEFAULT_TOKEN_EXPIRATION_SECONDS = 3607;

/** Where volume contents are read from. Missing objects resolve to `undefined`. */
export interface VolumeLookup {
  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  getSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** Read only for pod templates (automount); may throw when forbidden. */
  getServiceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined>;
  requestToken(
    namespace: string,
    serviceAccount: string,
    options: { audiences: string[]; expirationSeconds: number },
  ): Promise<MintedToken>;
}

export interface ResolveVolumesInput {
  /** The pod, or the workload's pod template, holding the container. */
  pod: PodLike;
  /** Container (`spec.containers`, then `spec.initContainers`). */
  container: string;
  /** Defaults to the pod's namespace. */
  namespace?: string;
  /** A running pod of the workload, for downward API metadata (name, uid, labels). Defaults to `pod` when it is a pod. */
  livePod?: PodFields;
  /** The node's `status.allocatable`, for resourceFieldRefs of limits the container does not set. */
  nodeAllocatable?: ResourceList;
  /** The container's resolved env, to expand `subPathExpr`. Mounts using it are skipped without. */
  env?: Readonly<Record<string, string>>;
}

/** A file the local container needs, at its absolute path in the container. */
export interface VolumeFile {
  path: string;
  content: Buffer;
  /** Permission bits as `stat` shows them in the pod. */
  mode: number;
  uid: number;
  gid: number;
  volume: string;
  mountPath: string;
  /** The pod sees it on a read-only mount (always so for these volume types). */
  readOnly: boolean;
  /** False for subPath mounts, which the kubelet never updates after the container starts. */
  live: boolean;
  /** Content from a Secret or a service-account token. */
  secret: boolean;
}

/** A directory to create (mount points, nested item directories, empty volumes). */
export interface VolumeDirectory {
  path: string;
  mode: number;
  uid: number;
  gid: number;
  volume: string;
  mountPath: string;
}

/** A mount whose contents live in the pod and are copied through the agent. */
export interface VolumeCopy {
  volume: string;
  /** The volume source's field name: `emptyDir`, `persistentVolumeClaim`, `hostPath`, `csi`, … */
  type: string;
  mountPath: string;
  /** Where the agent container sees the same mount (`GET /v1/files?path=`). */
  agentPath: string;
  subPath?: string;
  readOnly: boolean;
  /** 'directory' or 'file' when the volume type decides it; undefined when only the pod knows. */
  kind?: 'directory' | 'file';
  /** Mode and owner of the mount point when the kubelet sets them (emptyDir). */
  root?: { mode: number; uid: number; gid: number };
}

/** A token written into a volume, for display and refresh. */
export interface VolumeToken {
  path: string;
  volume: string;
  serviceAccount: string;
  audiences: string[];
  expirationSeconds: number;
  /** RFC 3339. */
  expiresAt: string;
}

export interface VolumeLayout {
  /** Sorted by path. */
  files: VolumeFile[];
  /** Parents before children. */
  directories: VolumeDirectory[];
  copies: VolumeCopy[];
  tokens: VolumeToken[];
  warnings: string[];
}

/** One mount of the container, resolved on its own (the follower keeps the last good one). */
export interface MountLayout {
  mount: V1VolumeMount;
  kind: 'files' | 'copy' | 'skipped';
  files: VolumeFile[];
  directories: VolumeDirectory[];
  copy?: VolumeCopy;
  tokens: VolumeToken[];
  /** Set when the kubelet would fail to mount the volume. */
  error?: DevboxError;
  /** Identifies the volume's whole content: the kubelet rewrites a volume (new `..data`) when it changes. */
  volumeDigest?: string;
}

/** The ConfigMaps, Secrets and ServiceAccounts the container's volumes read. */
export interface VolumeReferences {
  configMaps: string[];
  secrets: string[];
  /** Service accounts with tokens. */
  serviceAccounts: string[];
  /** True when downward API files read labels or annotations, which change on a running pod. */
  podMetadata: boolean;
}

/** Volume source fields whose contents the agent copies from the pod. */
const copiedTypes = [
  'emptyDir',
  'persistentVolumeClaim',
  'hostPath',
  'ephemeral',
  'csi',
  'nfs',
  'image',
  'gitRepo',
  'iscsi',
  'cephfs',
  'rbd',
  'glusterfs',
  'fc',
  'azureFile',
  'azureDisk',
  'awsElasticBlockStore',
  'gcePersistentDisk',
  'cinder',
  'flexVolume',
  'flocker',
  'portworxVolume',
  'quobyte',
  'scaleIO',
  'storageos',
  'vsphereVolume',
  'photonPersistentDisk',
] as const;

type GeneratedType = 'configMap' | 'secret' | 'downwardAPI' | 'projected';

function generatedType(volume: V1Volume): GeneratedType | undefined {
  if (volume.configMap) return 'configMap';
  if (volume.secret) return 'secret';
  if (volume.downwardAPI) return 'downwardAPI';
  if (volume.projected) return 'projected';
  return undefined;
}

function copiedType(volume: V1Volume): string | undefined {
  const v = volume as unknown as Record<string, unknown>;
  return copiedTypes.find((t) => v[t] !== undefined && v[t] !== null);
}

/**
 * The uid every init and regular container runs as, when they all name the same one in
 * their spec (the kubelet's FsUserFrom); undefined otherwise.
 */
export function podFsUser(spec: V1PodSpec): number | undefined {
  let fsUser: number | undefined;
  for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])]) {
    const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
    if (uid === undefined || uid === null) return undefined;
    if (fsUser !== undefined && fsUser !== uid) return undefined;
    fsUser = uid;
  }
  return fsUser;
}

/** The pod's service account, as the API server defaults it. */
export function serviceAccountOf(spec: V1PodSpec | undefined): string {
  return spec?.serviceAccountName || spec?.serviceAccount || 'default';
}

/** The projected volume the ServiceAccount admission plugin adds to pods. */
export function serviceAccountVolume(name: string): V1Volume {
  return {
    name,
    projected: {
      defaultMode: DEFAULT_VOLUME_MODE,
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: DEFAULT_TOKEN_EXPIRATION_SECONDS } },
        { configMap: { name: ROOT_CA_CONFIGMAP, items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        {
          downwardAPI: {
            items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
          },
        },
      ],
    },
  };
}

/** True for an object the API server admitted (a pod), false for a pod template. */
function isAdmittedPod(pod: PodLike): boolean {
  return Boolean(pod.metadata?.uid);
}

/**
 * The container's mounts and the pod's volumes, with the service-account token mount
 * added to a template the way admission adds it to the pods created from it.
 */
async function mountsWithServiceAccount(
  pod: PodLike,
  container: V1Container,
  namespace: string,
  lookup: VolumeLookup,
  warnings: string[],
): Promise<{ mounts: V1VolumeMount[]; volumes: V1Volume[] }> {
  const spec = pod.spec as V1PodSpec;
  const mounts = [...(container.volumeMounts ?? [])];
  const volumes = [...(spec.volumes ?? [])];
  if (isAdmittedPod(pod)) return { mounts, volumes };
  if (mounts.some((m) => m.mountPath === SERVICE_ACCOUNT_MOUNT_PATH)) return { mounts, volumes };
  let automount = spec.automountServiceAccountToken;
  if (automount === undefined) {
    const account = serviceAccountOf(spec);
    try {
      automount = (await lookup.getServiceAccount(namespace, account))?.automountServiceAccountToken;
    } catch (err) {
      warnings.push(
        `ServiceAccount ${namespace}/${account} could not be read (${errorText(err)}); its token is assumed to be mounted`,
      );
    }
  }
  if (automount === false) return { mounts, volumes };
  let volume = volumes.find((v) => v.name.startsWith(SERVICE_ACCOUNT_VOLUME_PREFIX));
  if (!volume) {
    volume = serviceAccountVolume(`${SERVICE_ACCOUNT_VOLUME_PREFIX}devbox`);
    volumes.push(volume);
  }
  mounts.push({ name: volume.name, mountPath: SERVICE_ACCOUNT_MOUNT_PATH, readOnly: true });
  return { mounts, volumes };
}

/** Annotations the kubelet adds to its own copy of every pod it gets from the API server. */
export const KUBELET_SEEN_ANNOTATION = 'kubernetes.io/config.seen';
export const KUBELET_SOURCE_ANNOTATION = 'kubernetes.io/config.source';

/**
 * The pod as its kubelet sees it: downward API files of annotations read the kubelet's copy,
 * which carries when it first saw the pod (RFC 3339 with nanoseconds; approximated here by
 * the pod's start time, which the kubelet sets in the same sync) and where it came from.
 */
function withKubeletAnnotations(pod: PodFields & { status?: { startTime?: Date | string } }): PodFields {
  if (!pod.metadata?.uid) return pod;
  const seen = pod.status?.startTime ?? pod.metadata.creationTimestamp;
  const annotations = { ...(pod.metadata.annotations ?? {}) };
  annotations[KUBELET_SOURCE_ANNOTATION] ??= 'api';
  if (seen !== undefined)
    annotations[KUBELET_SEEN_ANNOTATION] ??= new Date(seen).toISOString().replace('.000Z', 'Z');
  return { ...pod, metadata: { ...pod.metadata, annotations } };
}

/** A volume's files and the tokens among them, computed once per volume. */
interface VolumeContents {
  type: GeneratedType;
  payload: Payload;
  digest: string;
  tokens: {
    path: string;
    serviceAccount: string;
    audiences: string[];
    expirationSeconds: number;
    expiresAt: string;
  }[];
}

interface Context {
  namespace: string;
  spec: V1PodSpec;
  downward: DownwardContext;
  fsGroup: number | undefined;
  lookup: VolumeLookup;
  tokens: Map<string, Promise<MintedToken>>;
}

/** Why the kubelet would fail to mount a volume, worded like its event. */
class MountError extends DevboxError {}

function mountError(volume: string, errors: unknown[]): MountError {
  const text = errors.map(errorText).join('; ');
  const missing = errors.some((e) => e instanceof DevboxError && e.code === 'NOT_FOUND');
  return new MountError(
    missing ? 'NOT_FOUND' : 'BAD_INPUT',
    `MountVolume.SetUp failed for volume "${volume}" : ${text}`,
    {
      hint: 'the pod cannot start with this volume either (it stays in ContainerCreating); create what is missing or mark the reference optional',
      cause: errors[0],
    },
  );
}

async function getConfigMap(ctx: Context, name: string, optional: boolean): Promise<V1ConfigMap> {
  const cm = await ctx.lookup.getConfigMap(ctx.namespace, name);
  if (cm) return cm;
  if (optional) return {};
  throw new DevboxError('NOT_FOUND', `configmap "${name}" not found`);
}

async function getSecret(ctx: Context, name: string, optional: boolean): Promise<V1Secret> {
  const s = await ctx.lookup.getSecret(ctx.namespace, name);
  if (s) return s;
  if (optional) return {};
  throw new DevboxError('NOT_FOUND', `secret "${name}" not found`);
}

function mintToken(ctx: Context, serviceAccount: string, audiences: string[], expirationSeconds: number) {
  const key = JSON.stringify([serviceAccount, audiences, expirationSeconds]);
  let minted = ctx.tokens.get(key);
  if (!minted) {
    minted = ctx.lookup.requestToken(ctx.namespace, serviceAccount, { audiences, expirationSeconds });
    ctx.tokens.set(key, minted);
  }
  return minted;
}

/** The files of a ConfigMap, Secret, downward API or projected volume, as the kubelet collects them. */
async function volumeContents(
  volume: V1Volume,
  type: GeneratedType,
  ctx: Context,
  warnings: string[],
): Promise<VolumeContents> {
  const payload: Payload = new Map();
  const tokens: VolumeContents['tokens'] = [];
  const merge = (p: Payload) => {
    for (const [k, v] of p) payload.set(k, v);
  };
  if (type === 'configMap' && volume.configMap) {
    const src = volume.configMap;
    const optional = src.optional === true;
    const cm = await getConfigMap(ctx, src.name ?? '', optional);
    merge(configMapPayload(cm, src.items, src.defaultMode ?? DEFAULT_VOLUME_MODE, optional));
  } else if (type === 'secret' && volume.secret) {
    const src = volume.secret;
    const optional = src.optional === true;
    const s = await getSecret(ctx, src.secretName ?? '', optional);
    merge(secretPayload(s, src.items, src.defaultMode ?? DEFAULT_VOLUME_MODE, optional));
  } else if (type === 'downwardAPI' && volume.downwardAPI) {
    const src = volume.downwardAPI;
    merge(downwardPayload(src.items, ctx.downward, src.defaultMode ?? DEFAULT_VOLUME_MODE, warnings));
  } else if (type === 'projected' && volume.projected) {
    const defaultMode = volume.projected.defaultMode ?? DEFAULT_VOLUME_MODE;
    // Like the kubelet, every source is tried and all failures are reported together.
    const errors: unknown[] = [];
    for (const source of volume.projected.sources ?? []) {
      try {
        if (source.configMap) {
          const optional = source.configMap.optional === true;
          const cm = await getConfigMap(ctx, source.configMap.name ?? '', optional);
          merge(configMapPayload(cm, source.configMap.items, defaultMode, optional));
        } else if (source.secret) {
          const optional = source.secret.optional === true;
          const s = await getSecret(ctx, source.secret.name ?? '', optional);
          merge(secretPayload(s, source.secret.items, defaultMode, optional));
        } else if (source.downwardAPI) {
          merge(downwardPayload(source.downwardAPI.items, ctx.downward, defaultMode, warnings));
        } else if (source.serviceAccountToken) {
          const tp = source.serviceAccountToken;
          const account = serviceAccountOf(ctx.spec);
          const audiences = tp.audience ? [tp.audience] : [];
          const expirationSeconds = tp.expirationSeconds ?? 3600;
          const path = cleanVolumePath(tp.path);
          let minted: MintedToken;
          try {
            minted = await mintToken(ctx, account, audiences, expirationSeconds);
          } catch (err) {
            // devbox's own permissions, not the pod's: the rest of the volume is still right.
            if (!(err instanceof KubeApiError && (err.status === 403 || err.status === 401))) throw err;
            warnings.push(
              `volume ${volume.name}: no token for ServiceAccount ${ctx.namespace}/${account} (create serviceaccounts/token is not allowed); ${path} is left out`,
            );
            continue;
          }
          // With fsGroup or a common runAsUser the kubelet writes tokens 0600, owned by that user;
          // the fsGroup ownership pass then adds group read.
          const fsUser = podFsUser(ctx.spec);
          const mode = ctx.fsGroup !== undefined || fsUser !== undefined ? 0o600 : defaultMode;
          payload.set(path, { content: Buffer.from(minted.token, 'utf8'), mode, secret: true, uid: fsUser });
          tokens.push({
            path,
            serviceAccount: account,
            audiences,
            expirationSeconds,
            expiresAt: minted.expiresAt,
          });
        } else {
          const kind =
            Object.keys(source).find((k) => (source as Record<string, unknown>)[k] != null) ?? 'unknown';
          warnings.push(
            `volume ${volume.name}: projected source ${kind} is not supported; its files are missing`,
          );
        }
      } catch (err) {
        errors.push(err);
      }
    }
    if (errors.length) throw mountError(volume.name, errors);
  }
  return { type, payload, tokens, digest: payloadDigest(payload) };
}

function payloadDigest(payload: Payload): string {
  const hash = createHash('sha256');
  for (const path of [...payload.keys()].sort()) {
    const p = payload.get(path) as Projection;
    hash.update(`${path}\0${p.mode}\0${p.uid ?? ''}\0${p.content.length}\0`);
    hash.update(p.content);
  }
  return hash.digest('hex');
}

/** Directories implied by nested payload paths ("a/b/c" → "a", "a/b"). */
function impliedDirectories(payload: Payload): Set<string> {
  const dirs = new Set<string>();
  for (const path of payload.keys()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return dirs;
}

function joinMount(mountPath: string, rel: string): string {
  return rel ? posix.join(mountPath, rel) : posix.normalize(mountPath).replace(/(.)\/+$/, '$1');
}

/**
 * Puts a volume's files at a mount: all of them under the mount path, or with `subPath`
 * the single file or subdirectory it names at the mount path itself. A subPath that the
 * volume lacks becomes an empty directory, which the kubelet creates inside the volume.
 */
function placeContents(
  contents: VolumeContents,
  mount: V1VolumeMount,
  subPath: string | undefined,
  ctx: Context,
): { files: VolumeFile[]; directories: VolumeDirectory[]; tokens: VolumeToken[]; createdSubPath?: string } {
  const mountPath = joinMount(mount.mountPath, '');
  const gid = ctx.fsGroup ?? 0;
  const rootMode = withFsGroup(volumeRootMode(contents.type), true, ctx.fsGroup);
  const nestedMode = withFsGroup(NESTED_DIRECTORY_MODE, true, ctx.fsGroup);
  const live = subPath === undefined;
  const base = { uid: 0, gid, volume: mount.name, mountPath };
  const files: VolumeFile[] = [];
  const directories: VolumeDirectory[] = [];
  const tokens: VolumeToken[] = [];
  const dirs = impliedDirectories(contents.payload);
  const file = (rel: string, at: string) => {
    const p = contents.payload.get(rel);
    if (!p) return;
    files.push({
      ...base,
      uid: p.uid ?? 0,
      path: at,
      content: p.content,
      mode: withFsGroup(p.mode, false, ctx.fsGroup),
      readOnly: true,
      live,
      secret: p.secret,
    });
    const token = contents.tokens.find((t) => t.path === rel);
    if (token) {
      tokens.push({
        path: at,
        volume: mount.name,
        serviceAccount: token.serviceAccount,
        audiences: token.audiences,
        expirationSeconds: token.expirationSeconds,
        expiresAt: token.expiresAt,
      });
    }
  };
  const tree = (prefix: string, rootDirMode: number) => {
    directories.push({ ...base, path: mountPath, mode: rootDirMode });
    const under = prefix ? `${prefix}/` : '';
    for (const dir of [...dirs].sort()) {
      if (!dir.startsWith(under) || dir === prefix) continue;
      directories.push({ ...base, path: joinMount(mountPath, dir.slice(under.length)), mode: nestedMode });
    }
    for (const rel of [...contents.payload.keys()].sort()) {
      if (rel.startsWith(under)) file(rel, joinMount(mountPath, rel.slice(under.length)));
    }
  };

  const sub = subPath === undefined ? '' : cleanVolumePath(subPath);
  if (sub === '' || sub === '..data') {
    tree('', rootMode);
  } else if (contents.payload.has(sub)) {
    file(sub, mountPath);
  } else if (dirs.has(sub)) {
    tree(sub, nestedMode);
  } else {
    directories.push({ ...base, path: mountPath, mode: rootMode });
    return { files, directories, tokens, createdSubPath: sub };
  }
  return { files, directories, tokens };
}

function expandSubPath(mount: V1VolumeMount, env: ResolveVolumesInput['env']): string | undefined {
  if (mount.subPath) return mount.subPath;
  if (!mount.subPathExpr || !env) return undefined;
  return expandReferences(mount.subPathExpr, (name) => env[name]);
}

function copyFor(
  mount: V1VolumeMount,
  volume: V1Volume,
  type: string,
  fsGroup: number | undefined,
): VolumeCopy {
  const mountPath = joinMount(mount.mountPath, '');
  const copy: VolumeCopy = {
    volume: volume.name,
    type,
    mountPath,
    agentPath: `${AGENT_POD_FILES_ROOT}${mountPath.startsWith('/') ? '' : '/'}${mountPath}`,
    readOnly: mount.readOnly === true || volume.persistentVolumeClaim?.readOnly === true,
  };
  if (mount.subPath) copy.subPath = mount.subPath;
  if (!mount.subPath) {
    if (type === 'hostPath') {
      const t = volume.hostPath?.type ?? '';
      if (t === 'Directory' || t === 'DirectoryOrCreate') copy.kind = 'directory';
      else if (t !== '') copy.kind = 'file';
    } else {
      copy.kind = 'directory';
    }
    if (type === 'emptyDir') {
      // The kubelet makes emptyDirs world-writable; fsGroup adds setgid (a writable volume).
      copy.root = { mode: fsGroup === undefined ? 0o777 : 0o2777, uid: 0, gid: fsGroup ?? 0 };
    }
  }
  return copy;
}

/**
 * Resolves each of the container's mounts on its own: files, a copy, or skipped with a
 * warning. Errors stay on their mount (`error`), so one missing object does not hide the
 * others; {@link resolveVolumes} turns them into one error.
 */
export async function resolveMounts(
  input: ResolveVolumesInput,
  lookup: VolumeLookup,
): Promise<{ mounts: MountLayout[]; warnings: string[]; references: VolumeReferences }> {
  const { spec, container, namespace } = podContainer(input, 'resolveVolumes');
  const warnings: string[] = [];
  const live = input.livePod ?? (isAdmittedPod(input.pod) ? input.pod : undefined);
  const fieldPod: PodFields = live
    ? withKubeletAnnotations(live)
    : { ...input.pod, metadata: { namespace, ...input.pod.metadata } };
  const ctx: Context = {
    namespace,
    spec,
    fsGroup: spec.securityContext?.fsGroup ?? undefined,
    lookup,
    tokens: new Map(),
    downward: {
      pod: fieldPod,
      live: live !== undefined,
      spec,
      container: container.name,
      nodeAllocatable: input.nodeAllocatable,
    },
  };
  const { mounts, volumes } = await mountsWithServiceAccount(
    input.pod,
    container,
    namespace,
    lookup,
    warnings,
  );
  const contents = new Map<string, Promise<VolumeContents>>();
  const out: MountLayout[] = [];
  const created = new Map<string, Set<string>>();

  for (const mount of mounts) {
    const layout: MountLayout = { mount, kind: 'skipped', files: [], directories: [], tokens: [] };
    out.push(layout);
    const volume = volumes.find((v) => v.name === mount.name);
    if (!volume) {
      warnings.push(
        `the mount at ${mount.mountPath} names volume ${mount.name}, which the pod does not have`,
      );
      continue;
    }
    const generated = generatedType(volume);
    const copied = generated ? undefined : copiedType(volume);
    if (mount.subPathExpr && (copied || !input.env)) {
      warnings.push(
        copied
          ? `the ${copied} volume ${volume.name} at ${mount.mountPath} uses subPathExpr, which the agent does not mount; its contents are not copied`
          : `the volume ${volume.name} at ${mount.mountPath} uses subPathExpr and the container's env was not given; it is left out`,
      );
      continue;
    }
    if (copied) {
      layout.kind = 'copy';
      layout.copy = copyFor(mount, volume, copied, ctx.fsGroup);
      continue;
    }
    if (!generated) {
      const kind = Object.keys(volume).find((k) => k !== 'name') ?? 'unknown';
      warnings.push(
        `volume ${volume.name} at ${mount.mountPath} is of type ${kind}, which devbox does not support; it is left out`,
      );
      continue;
    }
    layout.kind = 'files';
    let pending = contents.get(volume.name);
    if (!pending) {
      pending = volumeContents(volume, generated, ctx, warnings);
      contents.set(volume.name, pending);
    }
    try {
      const placed = placeContents(await pending, mount, expandSubPath(mount, input.env), ctx);
      layout.files = placed.files;
      layout.directories = placed.directories;
      layout.tokens = placed.tokens;
      layout.volumeDigest = (await pending).digest;
      if (placed.createdSubPath) {
        const set = created.get(volume.name) ?? new Set();
        set.add(placed.createdSubPath);
        created.set(volume.name, set);
      }
    } catch (err) {
      layout.error = err instanceof MountError ? err : mountError(volume.name, [err]);
    }
  }
  // A subPath the kubelet had to create also shows up in whole-volume mounts of that volume.
  for (const layout of out) {
    const subs = created.get(layout.mount.name);
    if (!subs || layout.mount.subPath || layout.mount.subPathExpr || layout.kind !== 'files' || layout.error)
      continue;
    const root = layout.directories[0];
    if (!root) continue;
    for (const sub of subs) layout.directories.push({ ...root, path: posix.join(root.path, sub) });
  }
  return { mounts: out, warnings, references: referencesOf(mounts, volumes, spec) };
}

function depth(path: string): number {
  return path === '/' ? 0 : path.split('/').length;
}

function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);
}

/**
 * Flattens resolved mounts into one layout. A path under a deeper mount belongs to that
 * mount (the runtime stacks mounts by depth), so what the outer mount has there is hidden.
 */
export function assembleLayout(mounts: readonly MountLayout[], warnings: readonly string[]): VolumeLayout {
  const mountPaths = mounts.map((m) => joinMount(m.mount.mountPath, ''));
  const hidden = (path: string, own: string) =>
    mountPaths.some((mp) => mp !== own && depth(mp) > depth(own) && within(path, mp));
  const files: VolumeFile[] = [];
  const directories: VolumeDirectory[] = [];
  const copies: VolumeCopy[] = [];
  const tokens: VolumeToken[] = [];
  for (const m of mounts) {
    const own = joinMount(m.mount.mountPath, '');
    files.push(...m.files.filter((f) => !hidden(f.path, own)));
    directories.push(...m.directories.filter((d) => !hidden(d.path, own)));
    tokens.push(...m.tokens.filter((t) => !hidden(t.path, own)));
    if (m.copy) copies.push(m.copy);
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  directories.sort((a, b) => depth(a.path) - depth(b.path) || (a.path < b.path ? -1 : 1));
  copies.sort((a, b) => depth(a.mountPath) - depth(b.mountPath));
  return { files, directories, copies, tokens, warnings: [...new Set(warnings)] };
}

/** What the mounted volumes read, for following them. */
function referencesOf(
  mounts: readonly V1VolumeMount[],
  volumes: readonly V1Volume[],
  spec: V1PodSpec,
): VolumeReferences {
  const used = new Set(mounts.map((m) => m.name));
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  const accounts = new Set<string>();
  let podMetadata = false;
  const downward = (items: readonly { fieldRef?: { fieldPath: string } }[] | undefined) => {
    for (const i of items ?? []) {
      const field = i.fieldRef?.fieldPath ?? '';
      if (field.startsWith('metadata.labels') || field.startsWith('metadata.annotations')) podMetadata = true;
    }
  };
  for (const v of volumes) {
    if (!used.has(v.name)) continue;
    if (v.configMap?.name) configMaps.add(v.configMap.name);
    if (v.secret?.secretName) secrets.add(v.secret.secretName);
    downward(v.downwardAPI?.items);
    for (const s of v.projected?.sources ?? []) {
      if (s.configMap?.name) configMaps.add(s.configMap.name);
      if (s.secret?.name) secrets.add(s.secret.name);
      if (s.serviceAccountToken) accounts.add(serviceAccountOf(spec));
      downward(s.downwardAPI?.items);
    }
  }
  return {
    configMaps: [...configMaps].sort(),
    secrets: [...secrets].sort(),
    serviceAccounts: [...accounts].sort(),
    podMetadata,
  };
}

/**
 * The files, directories and copies the local container needs for `input.container`'s
 * volumes. Throws NOT_FOUND (naming every failing volume and object) where the kubelet
 * would fail to mount a volume.
 */
export async function resolveVolumes(
  input: ResolveVolumesInput,
  lookup: VolumeLookup,
): Promise<VolumeLayout> {
  const { mounts, warnings } = await resolveMounts(input, lookup);
  const errors = mounts.flatMap((m) => (m.error ? [m.error] : []));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) {
    throw new DevboxError(
      errors.every((e) => e.code === 'NOT_FOUND') ? 'NOT_FOUND' : 'BAD_INPUT',
      errors.map((e) => e.message).join('\n'),
      { hint: errors[0]?.hint },
    );
  }
  return assembleLayout(mounts, warnings);
}
