/**
 * A dev container that an editor creates (not devbox) receives the pod's
 * volumes with `--volumes-from <sidecar>`: the sidecar is created with one
 * named volume per mount of the pod, filled by tar through the engine before
 * it starts, so the dev container sees the files at the pod's paths on any
 * engine, remote ones included.
 */
import { posix } from 'node:path';
import type { InjectedFiles } from '../docker/index.js';
import { SERVICE_ACCOUNT_MOUNT_PATH } from '../kube/volumes/index.js';

/** Paths a volume must not cover: the sidecar's own files and the system it runs on. */
const RESERVED = ['/', '/devbox', '/bin', '/sbin', '/lib', '/lib64', '/usr', '/etc', '/proc', '/sys', '/dev'];

export interface VolumeRoots {
  /** Directories that become volumes, outermost only, sorted. */
  roots: string[];
  /** Why some files cannot be shared this way. */
  warnings: string[];
}

const inside = (path: string, dir: string) => path === dir || path.startsWith(dir === '/' ? '/' : `${dir}/`);

/** A mount of the pod's container, as in its `volumeMounts`. */
export interface PodMount {
  mountPath: string;
  subPath?: string;
  subPathExpr?: string;
}

/**
 * The directories to make volumes of, for `files` laid out under the pod
 * container's `mounts`. A mount of part of a volume (`subPath`) may be a
 * single file, which cannot be a volume: it is reported and left out. A file
 * outside every mount (the service-account token of a pod template) gets its
 * own directory.
 */
export function volumeRoots(files: InjectedFiles | undefined, podMounts: readonly PodMount[]): VolumeRoots {
  const warnings: string[] = [];
  const clean = (p: string) => posix.normalize(p).replace(/(.)\/$/, '$1');
  const whole = [
    ...new Set(podMounts.filter((m) => !m.subPath && !m.subPathExpr).map((m) => clean(m.mountPath))),
  ];
  const partial = [
    ...new Set(podMounts.filter((m) => m.subPath || m.subPathExpr).map((m) => clean(m.mountPath))),
  ];
  for (const path of partial)
    warnings.push(
      `${path} mounts part of a volume (subPath) and cannot be shared with an editor-made dev container; \`devbox up --devcontainer\` copies it in`,
    );
  const candidates = new Set<string>();
  if (!files) return { roots: [], warnings: [] };
  if (!Array.isArray(files)) {
    for (const m of [...whole, SERVICE_ACCOUNT_MOUNT_PATH]) candidates.add(m);
  } else {
    for (const file of files) {
      const within = (list: string[]) =>
        list.filter((m) => inside(file.path, m)).sort((a, b) => b.length - a.length)[0];
      const mount = within(whole);
      const part = within(partial);
      if (part && (!mount || part.length > mount.length)) continue;
      candidates.add(
        mount ??
          (inside(file.path, SERVICE_ACCOUNT_MOUNT_PATH)
            ? SERVICE_ACCOUNT_MOUNT_PATH
            : posix.dirname(file.path)),
      );
    }
  }
  const roots: string[] = [];
  for (const root of [...candidates].sort()) {
    if (RESERVED.includes(root)) {
      warnings.push(
        `the pod mounts a volume at ${root}, which the dev container cannot share; its files are left out`,
      );
      continue;
    }
    if (roots.some((r) => inside(root, r))) continue;
    roots.push(root);
  }
  return { roots, warnings };
}

/** Volume name for the `index`-th root of a session. */
export function sessionVolumeName(sessionId: string, index: number): string {
  return `devbox-${sessionId}-pod-${index}`;
}
