/**
 * The Docker side of `devbox up`: a sidecar container that owns the network
 * namespace (DNS on 127.0.0.1, cluster addresses on lo, published ports) and
 * the service container that joins it. Both are labelled, so sessions are
 * found and removed from Docker alone; a failure midway removes whatever was
 * created, so there is never half a session.
 */
import { promises as fs } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';
import { debugLogger } from '../util/log.js';
import type { ContainerSpec, DockerClient, PortBinding } from './client.js';
import { putFiles } from './session-files.js';
import {
  groupSessions,
  type InjectedFile,
  SESSION_LABELS,
  type SessionIdentity,
  type SessionSpec,
  type SessionSummary,
  SIDECAR_BUNDLE_PATH,
  SIDECAR_CONFIG_PATH,
  type SidecarOptions,
  serviceContainerSpec,
  sidecarContainerSpec,
} from './session-spec.js';

const log = debugLogger('docker');

/** A container of a created session. */
export interface SessionContainer {
  id: string;
  name: string;
}

export interface CreatedSession {
  id: string;
  sidecar: SessionContainer;
  service: SessionContainer;
}

export interface CreateSessionOptions {
  /**
   * Runs once the sidecar has started and before the service container is
   * created, e.g. `waitSidecarReady`, so the service never starts without
   * cluster DNS and addresses. `spec.service` is read after it, so it may still
   * adjust it (the env in fallback mode). A failure here rolls everything back.
   */
  beforeService?: (sidecar: SessionContainer) => Promise<void>;
  /** Remove an existing devbox session holding the container names (a stale one after a crash). Default: CONFLICT. */
  replace?: boolean;
  /** Aborting rolls back what was created and rejects with the signal's reason. */
  signal?: AbortSignal;
}

/**
 * Creates and starts the sidecar (files copied in before start), then the
 * service joined to its network (the pod's volumes copied in before start).
 * Errors: NOT_FOUND for a missing image, CONFLICT for a taken host port or
 * container name, BAD_INPUT for a bad mount source or a command the image
 * lacks; nothing is left behind in any of these cases.
 */
export async function createSession(
  docker: DockerClient,
  spec: SessionSpec,
  options: CreateSessionOptions = {},
): Promise<CreatedSession> {
  const { signal } = options;
  const sidecarSpec = sidecarContainerSpec(spec);
  const sidecarName = sidecarSpec.name ?? '';
  const serviceName = serviceContainerSpec(spec, '').name ?? '';
  signal?.throwIfAborted();
  await checkImage(docker, spec.sidecar.image, 'sidecar');
  await checkImage(docker, spec.service.image, 'service');
  await claimNames(docker, [sidecarName, serviceName], spec.session, Boolean(options.replace));

  const created: SessionContainer[] = [];
  try {
    const sidecar = { id: await create(docker, sidecarSpec, 'sidecar'), name: sidecarName };
    created.unshift(sidecar);
    await putFiles(docker, sidecar.id, sidecarFiles(spec.sidecar));
    signal?.throwIfAborted();
    await start(docker, sidecar, 'sidecar', spec.sidecar.ports ?? []);
    log.debug('sidecar started', { id: sidecar.id, name: sidecar.name });
    await options.beforeService?.(sidecar);
    signal?.throwIfAborted();

    const serviceSpec = serviceContainerSpec(spec, sidecar.id);
    const service = { id: await create(docker, serviceSpec, 'service'), name: serviceName };
    created.unshift(service);
    if (spec.service.files) await putFiles(docker, service.id, spec.service.files);
    signal?.throwIfAborted();
    await start(docker, service, 'service', [], serviceSpec);
    log.debug('service started', { id: service.id, name: service.name });
    return { id: spec.session.id, sidecar, service };
  } catch (err) {
    const left = await rollBack(docker, created);
    if (signal?.aborted && !isDevboxError(err)) throw signal.reason;
    throw withLeftovers(err, left);
  }
}

/** The daemon, its config (root-only: it holds a token) and any extra files. */
function sidecarFiles(sidecar: SidecarOptions): InjectedFile[] {
  return [
    { path: SIDECAR_BUNDLE_PATH, content: sidecar.bundle, mode: 0o644 },
    { path: SIDECAR_CONFIG_PATH, content: `${JSON.stringify(sidecar.config, null, 2)}\n`, mode: 0o600 },
    ...(sidecar.files ?? []),
  ];
}

async function checkImage(docker: DockerClient, image: string, role: 'sidecar' | 'service'): Promise<void> {
  if (await docker.imageExists(image)) return;
  throw missingImage(image, role, docker.endpoint.host);
}

function missingImage(image: string, role: 'sidecar' | 'service', host: string): DevboxError {
  return role === 'service'
    ? new DevboxError('NOT_FOUND', `Image ${image} is not on the Docker engine (${host})`, {
        hint: `Pass an image the engine has with \`--image\`, let devbox build one with \`--build <dir>\`, or pull or build ${image} first.`,
      })
    : new DevboxError('NOT_FOUND', `The sidecar image ${image} is not on the Docker engine (${host})`, {
        hint: 'devbox builds the runtime image itself; run `devbox doctor` to build and check it.',
      });
}

/** Fails (or, with `replace`, clears a stale devbox session) when a container name is taken. */
async function claimNames(
  docker: DockerClient,
  names: string[],
  session: SessionIdentity,
  replace: boolean,
): Promise<void> {
  for (const name of names) {
    const existing = await docker.inspectContainer(name);
    if (!existing) continue;
    const owner = existing.labels[SESSION_LABELS.session];
    if (!owner) throw foreignName(name, existing.image, existing.status);
    if (replace) {
      await removeSession(docker, owner);
      // A container of another session that kept our name but lost its label set is removed too.
      await docker.removeContainer(existing.id, { force: true });
      continue;
    }
    const workload = existing.labels[SESSION_LABELS.workload] ?? session.workload;
    throw new DevboxError(
      'CONFLICT',
      `A devbox session for ${workload} already exists (container ${name}, ${existing.status}, session ${owner})`,
      { hint: `Stop it with \`devbox down ${workload}\` (or \`devbox clean\`), then try again.` },
    );
  }
}

function foreignName(name: string, image: string, status: string): DevboxError {
  return new DevboxError(
    'CONFLICT',
    `A container named ${name} already exists and was not made by devbox (image ${image}, ${status})`,
    { hint: `Remove or rename it (\`docker rm -f ${name}\`), or choose other container names.` },
  );
}

async function create(
  docker: DockerClient,
  spec: ContainerSpec,
  role: 'sidecar' | 'service',
): Promise<string> {
  try {
    return await docker.createContainer(spec);
  } catch (err) {
    const text = errorText(err);
    if (isDevboxError(err, 'NOT_FOUND') && /no such image/i.test(text))
      throw missingImage(spec.image, role, docker.endpoint.host);
    if (isDevboxError(err, 'CONFLICT') && /already in use/i.test(text)) {
      // Lost a race with another `devbox up` or `docker run`.
      const existing = spec.name ? await docker.inspectContainer(spec.name) : undefined;
      if (existing && !existing.labels[SESSION_LABELS.session])
        throw foreignName(spec.name ?? '', existing.image, existing.status);
      throw new DevboxError('CONFLICT', `The container name ${spec.name} was taken meanwhile`, {
        hint: 'Another devbox session for this workload is starting; stop it with `devbox down` first.',
        cause: err,
      });
    }
    const source = /bind source path does not exist: (\S+)/.exec(text)?.[1];
    if (source)
      throw new DevboxError(
        'BAD_INPUT',
        `The -v source ${source} does not exist on the Docker engine's machine`,
        {
          hint: 'Create it, or fix the -v source path.',
          cause: err,
        },
      );
    throw err;
  }
}

async function start(
  docker: DockerClient,
  container: SessionContainer,
  role: 'sidecar' | 'service',
  ports: readonly PortBinding[],
  spec?: ContainerSpec,
): Promise<void> {
  try {
    await docker.startContainer(container.id);
  } catch (err) {
    const conflict = portConflict(errorText(err), ports);
    if (conflict) throw new DevboxError('CONFLICT', conflict.message, { hint: conflict.hint, cause: err });
    const missing = missingExecutable(errorText(err));
    if (role === 'service' && missing) {
      const command = [...(spec?.entrypoint ?? []), ...(spec?.cmd ?? [])].join(' ') || 'its default command';
      throw new DevboxError(
        'BAD_INPUT',
        `The service container cannot run ${command}: ${missing} is not in image ${spec?.image}`,
        {
          hint: 'Check the command after `--` (or the image’s entrypoint) and that the image contains it.',
          cause: err,
        },
      );
    }
    throw err;
  }
}

/** A taken host port in an engine error, explained; undefined when the error is about something else. */
export function portConflict(
  text: string,
  ports: readonly PortBinding[],
): { port: number; message: string; hint: string } | undefined {
  const match =
    /Bind for (\S*?):(\d+) failed: port is already allocated/.exec(text) ??
    /listen (?:tcp|udp)[46]? (\S*?):(\d+): bind: address already in use/.exec(text);
  if (!match) return undefined;
  const port = Number(match[2]);
  const binding = ports.find((p) => p.hostPort === port);
  const address = match[1] && match[1] !== '0.0.0.0' ? `${match[1]}:${port}` : `${port}`;
  const target = binding ? ` (for container port ${binding.containerPort}/${binding.protocol ?? 'tcp'})` : '';
  return {
    port,
    message: `Host port ${address}${target} is already in use`,
    hint: `Stop what uses it, or publish another host port with \`-p <free port>:${binding?.containerPort ?? '<container port>'}\`${binding ? ` (e.g. \`-p ${port + 1}:${binding.containerPort}\`)` : ''}.`,
  };
}

/** The executable the runtime could not find, from a start error. */
export function missingExecutable(text: string): string | undefined {
  const match =
    /exec: "([^"]+)": executable file not found/.exec(text) ??
    /exec: "([^"]+)": stat \S+: no such file or directory/.exec(text);
  return match?.[1];
}

/** Force-removes containers (service first); returns those that could not be removed. */
async function rollBack(docker: DockerClient, created: SessionContainer[]): Promise<string[]> {
  const left: string[] = [];
  for (const container of created) {
    try {
      await docker.removeContainer(container.id, { force: true });
    } catch (err) {
      log.warn('rollback could not remove a container', { name: container.name, error: errorText(err) });
      left.push(container.name);
    }
  }
  return left;
}

function withLeftovers(err: unknown, left: string[]): unknown {
  if (left.length === 0) return err;
  const note = `Containers left behind: ${left.join(', ')}; remove them with \`devbox clean\`.`;
  if (isDevboxError(err))
    return new DevboxError(err.code, err.message, {
      hint: err.hint ? `${err.hint}\n${note}` : note,
      cause: err,
    });
  return new DevboxError('INTERNAL', errorText(err), { hint: note, cause: err });
}

/** Which sessions to list; every given field must match. */
export interface SessionFilter {
  sessionId?: string;
  workload?: string;
  namespace?: string;
  context?: string;
  name?: string;
}

/** Sessions on this engine, from container labels alone (stopped ones included). */
export async function findSessions(
  docker: DockerClient,
  filter: SessionFilter = {},
): Promise<SessionSummary[]> {
  const labels: Record<string, string | undefined> = { [SESSION_LABELS.session]: filter.sessionId };
  if (filter.workload) labels[SESSION_LABELS.workload] = filter.workload;
  if (filter.namespace) labels[SESSION_LABELS.namespace] = filter.namespace;
  if (filter.context) labels[SESSION_LABELS.context] = filter.context;
  if (filter.name) labels[SESSION_LABELS.name] = filter.name;
  return groupSessions(await docker.listContainers({ labels, all: true }));
}

export interface RemovedSession {
  /** Names of the containers removed (none when the session was already gone). */
  containers: string[];
  volumes: string[];
}

/**
 * Stops the session's containers (the service first, then the sidecar, which
 * removes its addresses and closes its tunnels) and removes them and the
 * session's volumes. Removing a session that is gone is not an error.
 */
export async function removeSession(
  docker: DockerClient,
  sessionId: string,
  options: { timeoutSeconds?: number } = {},
): Promise<RemovedSession> {
  const members = await docker.listContainers({ labels: { [SESSION_LABELS.session]: sessionId }, all: true });
  const isSidecar = (labels: Record<string, string>) => labels[SESSION_LABELS.role] === 'sidecar';
  const ordered = [
    ...members.filter((c) => !isSidecar(c.labels)),
    ...members.filter((c) => isSidecar(c.labels)),
  ];
  for (const container of ordered) {
    if (container.state !== 'running') continue;
    try {
      await docker.stopContainer(
        container.id,
        options.timeoutSeconds === undefined ? {} : { timeoutSeconds: options.timeoutSeconds },
      );
    } catch (err) {
      if (!isDevboxError(err, 'NOT_FOUND')) throw err;
    }
  }
  for (const container of ordered) await docker.removeContainer(container.id, { force: true });
  const volumes = await docker.listVolumes({ labels: { [SESSION_LABELS.session]: sessionId } });
  for (const volume of volumes) await docker.removeVolume(volume.name, { force: true });
  return { containers: ordered.map((c) => c.name), volumes: volumes.map((v) => v.name) };
}

/** Where the build puts the sidecar daemon bundle (`dist/bundle/sidecar.mjs`). */
export function sidecarBundlePath(): string {
  return fileURLToPath(new URL('../../bundle/sidecar.mjs', import.meta.url));
}

/** The sidecar daemon bundle, for `SidecarOptions.bundle`. */
export async function readSidecarBundle(path: string = sidecarBundlePath()): Promise<Buffer> {
  try {
    return await fs.readFile(path);
  } catch (err) {
    throw new DevboxError('INTERNAL', `The sidecar bundle is missing at ${path}`, {
      hint: 'Reinstall devbox, or run `npm run build` in a source checkout.',
      cause: err,
    });
  }
}
