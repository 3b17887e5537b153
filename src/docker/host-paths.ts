/**
 * Bind mount sources are paths on the machine that runs the Docker engine.
 * When devbox itself runs in a container that has the engine's socket
 * (Codespaces, dev containers, CI runners), the user's `-v ./src:/app` names a
 * path in devbox's container: translate it through that container's own
 * mounts to the engine's path. When the engine is on another machine
 * (tcp://, ssh://), paths name that machine's files: say so.
 */
import { promises as fs } from 'node:fs';
import { hostname } from 'node:os';
import { posix } from 'node:path';
import { DevboxError } from '../util/errors.js';
import type { ContainerInfo, ContainerMount, DockerClient } from './client.js';
import type { DockerEndpoint } from './endpoint.js';

/** A user's `-v source:target[:ro]` mount. */
export interface BindMount {
  source: string;
  target: string;
  readOnly?: boolean;
}

/** Mounts with engine-side paths, and what the user should know about them. */
export interface ResolvedBindMounts {
  mounts: BindMount[];
  /** `local`: same file system as the engine; `container`: translated through devbox's own container; `remote`: the engine's machine. */
  mode: 'local' | 'container' | 'remote';
  /** Human notes (remote engine, a path that lives in a Docker volume, …). */
  notes: string[];
}

/** What the resolver looks at on this machine; tests pass fixtures. */
export interface HostProbe {
  /** Returns undefined when the file cannot be read. */
  readFile(path: string): Promise<string | undefined>;
  hostname(): string;
  /** Real path of an existing path; undefined when it does not exist. */
  realpath(path: string): Promise<string | undefined>;
}

export const processHostProbe: HostProbe = {
  readFile: async (path) => {
    try {
      return await fs.readFile(path, 'utf8');
    } catch {
      return undefined;
    }
  },
  hostname: () => hostname(),
  realpath: async (path) => {
    try {
      return await fs.realpath(path);
    } catch {
      return undefined;
    }
  },
};

const CONTAINER_ID = /[0-9a-f]{64}/;

/**
 * Container ids this process may be running in, best first: the files Docker
 * bind-mounts into every container (`/var/lib/docker/containers/<id>/hostname`
 * in mountinfo), then cgroup v1 paths, then the default hostname (short id).
 */
export function ownContainerCandidates(mountinfo = '', cgroup = '', host = ''): string[] {
  const out: string[] = [];
  const add = (id: string | undefined) => {
    if (id && !out.includes(id)) out.push(id);
  };
  for (const line of mountinfo.split('\n')) {
    const fields = line.split(' ');
    const root = fields[3] ?? '';
    const mountPoint = fields[4] ?? '';
    if (!/^\/etc\/(hostname|hosts|resolv\.conf)$/.test(mountPoint)) continue;
    const match = /\/containers\/([0-9a-f]{64})\//.exec(root);
    add(match?.[1]);
  }
  for (const line of cgroup.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    const match = /(?:^|\/)(?:docker[-/])([0-9a-f]{64})(?:\.scope)?(?:\/|$)/.exec(path);
    add(match?.[1] ?? (path.includes('docker') ? CONTAINER_ID.exec(path)?.[0] : undefined));
  }
  if (/^[0-9a-f]{12}$/.test(host)) add(host);
  return out;
}

/** Whether the engine is on another machine (bind paths are then that machine's). */
export function isRemoteEngine(endpoint: Pick<DockerEndpoint, 'host'>): boolean {
  const host = endpoint.host;
  if (host.startsWith('unix://') || host.startsWith('npipe://')) return false;
  if (host.startsWith('ssh://')) return true;
  try {
    const url = new URL(host.replace(/^tcp:/, 'http:'));
    const name = url.hostname.replace(/^\[|\]$/g, '');
    return !(name === 'localhost' || name === '::1' || name.startsWith('127.'));
  } catch {
    return true;
  }
}

/** Where `path` (in our container) lives on the engine's machine, through the longest matching mount. */
export function translateThroughMounts(
  path: string,
  mounts: readonly ContainerMount[],
): { hostPath: string; mount: ContainerMount } | undefined {
  const clean = posix.normalize(path);
  let best: ContainerMount | undefined;
  for (const mount of mounts) {
    if (mount.type !== 'bind' && mount.type !== 'volume') continue;
    if (!mount.source) continue;
    const dest = posix.normalize(mount.destination);
    const inside = clean === dest || clean.startsWith(dest === '/' ? '/' : `${dest}/`);
    if (inside && (!best || dest.length > posix.normalize(best.destination).length)) best = mount;
  }
  if (!best) return undefined;
  const rest = posix.relative(posix.normalize(best.destination), clean);
  return { hostPath: rest ? posix.join(best.source, rest) : best.source, mount: best };
}

/** Finds the container this process runs in, if the engine knows it. */
export async function findOwnContainer(
  docker: DockerClient,
  probe: HostProbe = processHostProbe,
): Promise<{ container?: ContainerInfo; inContainer: boolean }> {
  const [mountinfo, cgroup] = await Promise.all([
    probe.readFile('/proc/self/mountinfo'),
    probe.readFile('/proc/self/cgroup'),
  ]);
  const candidates = ownContainerCandidates(mountinfo, cgroup, probe.hostname());
  for (const id of candidates) {
    const container = await docker.inspectContainer(id);
    if (container) return { container, inContainer: true };
  }
  // A hostname that merely looks like a short id does not mean we run in a container.
  const strong = ownContainerCandidates(mountinfo, cgroup, '');
  return { inContainer: strong.length > 0 };
}

/**
 * Engine-side sources for the user's bind mounts. Relative sources are
 * resolved against `cwd`. A source that does not exist, or (inside a
 * container) that is not under a mount shared with the engine's machine, is a
 * BAD_INPUT naming the path; every such problem is reported at once.
 */
export async function resolveBindMounts(
  docker: DockerClient,
  mounts: readonly BindMount[],
  options: { cwd?: string; probe?: HostProbe } = {},
): Promise<ResolvedBindMounts> {
  const cwd = options.cwd ?? process.cwd();
  const probe = options.probe ?? processHostProbe;
  const absolute = mounts.map((m) => ({ ...m, source: posix.resolve(cwd, m.source) }));
  if (absolute.length === 0) return { mounts: [], mode: 'local', notes: [] };

  if (isRemoteEngine(docker.endpoint)) {
    return {
      mounts: absolute,
      mode: 'remote',
      notes: [
        `The Docker engine at ${docker.endpoint.host} runs on another machine: -v sources (${absolute
          .map((m) => m.source)
          .join(', ')}) are paths on that machine, not this one.`,
      ],
    };
  }

  const problems: string[] = [];
  const real: BindMount[] = [];
  for (const mount of absolute) {
    const path = await probe.realpath(mount.source);
    if (path === undefined) problems.push(`${mount.source} does not exist`);
    else real.push({ ...mount, source: path });
  }

  const own = await findOwnContainer(docker, probe);
  if (!own.container) {
    fail(problems, 'Create it, or fix the source path of -v.');
    const notes = own.inContainer
      ? [
          'devbox runs in a container the Docker engine does not know (Docker-in-Docker?): -v sources are used as they are.',
        ]
      : [];
    return { mounts: real, mode: 'local', notes };
  }

  const container = own.container;
  const shared = (container.mounts ?? []).filter((m) => m.type === 'bind' || m.type === 'volume');
  const notes: string[] = [];
  const translated: BindMount[] = [];
  for (const mount of real) {
    const hit = translateThroughMounts(mount.source, shared);
    if (!hit) {
      problems.push(
        `${mount.source} is inside devbox's own container (${container.name}), not on a mount the engine's machine shares`,
      );
      continue;
    }
    if (hit.mount.type === 'volume')
      notes.push(
        `${mount.source} lives in the Docker volume ${hit.mount.name ?? hit.mount.source}; mounting ${hit.hostPath}.`,
      );
    translated.push({ ...mount, source: hit.hostPath });
  }
  const places = shared.map((m) => m.destination).sort();
  fail(
    problems,
    places.length
      ? `devbox runs in container ${container.name}; only paths under its mounts (${places.join(', ')}) exist on the engine's machine. Move the files there, or mount their directory into this container.`
      : `devbox runs in container ${container.name}, which has no bind mounts: its files do not exist on the engine's machine. Mount the source directory into this container.`,
  );
  return { mounts: translated, mode: 'container', notes };
}

function fail(problems: string[], hint: string): void {
  if (problems.length === 0) return;
  const text = problems.length === 1 ? problems[0] : `\n  - ${problems.join('\n  - ')}`;
  throw new DevboxError('BAD_INPUT', `Cannot bind-mount -v source: ${text}`, { hint });
}
