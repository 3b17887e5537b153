/**
 * A devbox session whose service container is a dev container: the sidecar
 * is created as for any session (network, DNS, cluster addresses, tunnel),
 * then the project's own devcontainer.json runs through the Dev Containers
 * CLI, joined to the sidecar, with the pod's env and files. In sidecar-only
 * mode the dev container is left to an editor (VS Code, Codespaces), which
 * finds the env and labels in files and the volumes on the sidecar.
 *
 * Either way a failure removes every container and volume of the session,
 * so there is never half a session.
 */
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ContainerSpec,
  type DockerClient,
  type InjectedFile,
  type MountSpec,
  type PortBinding,
  putFiles,
  removeSession,
  SESSION_LABELS,
  type SessionContainer,
  type SessionSpec,
  SIDECAR_BUNDLE_PATH,
  SIDECAR_CONFIG_PATH,
} from '../docker/index.js';
import { portConflict } from '../docker/session-containers.js';
import { sessionLabels, sidecarContainerSpec } from '../docker/session-spec.js';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';
import { debugLogger } from '../util/log.js';
import type { Progress } from '../util/progress.js';
import { type DevcontainerCli, devcontainerCli } from './cli.js';
import { type LoadedDevcontainer, loadDevcontainer } from './config.js';
import { envLeftOutWarning, formatEnvFile, formatLabelFile, writePrivateFile } from './env-file.js';
import { assertJoinable, type JoinPlan, planJoin } from './join-plan.js';
import { joinedConfig } from './override.js';
import { type PodMount, sessionVolumeName, volumeRoots } from './volumes.js';
import type { WorkspacePlacement } from './workspace.js';

const log = debugLogger('devcontainer');

/** A project's devcontainer.json, read and checked for joining a session. */
export interface PreparedDevcontainer {
  loaded: LoadedDevcontainer;
  plan: JoinPlan;
}

/**
 * Reads the devcontainer.json for `path` (project folder, config folder or
 * file) and checks it can join a session: JSONC errors with line and column,
 * settings Docker refuses on a joined container with what to change. Nothing
 * is started.
 */
export async function prepareDevcontainer(path: string, cwd?: string): Promise<PreparedDevcontainer> {
  const loaded = await loadDevcontainer(path, cwd);
  const plan = planJoin(loaded.doc, loaded.config);
  assertJoinable(loaded.configFile, plan);
  return { loaded, plan };
}

/** A session whose service is a dev container. */
export interface CreatedDevcontainerSession {
  id: string;
  sidecar: SessionContainer;
  service: SessionContainer;
  remoteUser: string;
  remoteWorkspaceFolder: string;
  warnings: string[];
}

export interface DevcontainerSessionOptions {
  devcontainer: PreparedDevcontainer;
  workspace: WorkspacePlacement;
  /**
   * Runs once the sidecar has started, before the dev container is created (e.g. `waitSidecarReady`);
   * `spec.service` is read after it, so it may still adjust it.
   */
  beforeJoin?: (sidecar: SessionContainer) => Promise<void>;
  /** The Dev Containers CLI (tests pass their own); default: the installed one. */
  cli?: (workDir: string) => DevcontainerCli;
  progress?: Progress;
  signal?: AbortSignal;
  /** Each line the Dev Containers CLI prints. */
  onOutput?: (line: string) => void;
}

/** The sidecar's own files: the daemon, its config (root-only: it holds a token) and any extra files. */
function sidecarFiles(spec: SessionSpec): InjectedFile[] {
  const { sidecar } = spec;
  return [
    { path: SIDECAR_BUNDLE_PATH, content: sidecar.bundle, mode: 0o644 },
    { path: SIDECAR_CONFIG_PATH, content: `${JSON.stringify(sidecar.config, null, 2)}\n`, mode: 0o600 },
    ...(sidecar.files ?? []),
  ];
}

/** Fails when a container name the session needs is taken (by another session, or by something else). */
async function claimNames(docker: DockerClient, names: string[], workload: string): Promise<void> {
  for (const name of names) {
    const existing = await docker.inspectContainer(name);
    if (!existing) continue;
    const owner = existing.labels[SESSION_LABELS.session];
    if (owner) {
      throw new DevboxError(
        'CONFLICT',
        `A devbox session for ${existing.labels[SESSION_LABELS.workload] ?? workload} already exists (container ${name}, ${existing.status}, session ${owner})`,
        { hint: `Stop it with \`devbox down ${workload}\` (or \`devbox clean\`), then try again.` },
      );
    }
    throw new DevboxError(
      'CONFLICT',
      `A container named ${name} already exists and was not made by devbox (image ${existing.image}, ${existing.status})`,
      { hint: `Remove or rename it (\`docker rm -f ${name}\`).` },
    );
  }
}

/** Creates, fills and starts the sidecar; on failure removes it. */
async function startSidecar(
  docker: DockerClient,
  spec: SessionSpec,
  extra: { ports: readonly PortBinding[]; mounts: MountSpec[]; files?: SessionSpec['service']['files'] },
  options: Pick<DevcontainerSessionOptions, 'beforeJoin' | 'signal'>,
): Promise<SessionContainer> {
  const ports = [...(spec.sidecar.ports ?? []), ...extra.ports];
  const containerSpec: ContainerSpec = sidecarContainerSpec({ ...spec, sidecar: { ...spec.sidecar, ports } });
  if (extra.mounts.length) containerSpec.mounts = extra.mounts;
  const name = containerSpec.name ?? '';
  if (!(await docker.imageExists(containerSpec.image))) {
    throw new DevboxError(
      'NOT_FOUND',
      `The sidecar image ${containerSpec.image} is not on the Docker engine (${docker.endpoint.host})`,
      {
        hint: 'devbox builds the runtime image itself; run `devbox doctor` to build and check it.',
      },
    );
  }
  const id = await docker.createContainer(containerSpec);
  const sidecar = { id, name };
  await putFiles(docker, id, sidecarFiles(spec));
  if (extra.files) await putFiles(docker, id, extra.files);
  options.signal?.throwIfAborted();
  try {
    await docker.startContainer(id);
  } catch (err) {
    const conflict = portConflict(errorText(err), ports);
    if (conflict) throw new DevboxError('CONFLICT', conflict.message, { hint: conflict.hint, cause: err });
    throw err;
  }
  log.debug('sidecar started', { id, name });
  await options.beforeJoin?.(sidecar);
  options.signal?.throwIfAborted();
  return sidecar;
}

/**
 * Removes everything of the session and returns the error to throw: the
 * original one, with a note when the clean-up failed too.
 */
async function rollBack(docker: DockerClient, sessionId: string, err: unknown): Promise<unknown> {
  try {
    await removeSession(docker, sessionId, { timeoutSeconds: 2 });
    return err;
  } catch (cleanup) {
    const note = `Containers of session ${sessionId} may be left behind (${errorText(cleanup)}); remove them with \`devbox clean\`.`;
    if (isDevboxError(err))
      return new DevboxError(err.code, err.message, {
        hint: err.hint ? `${err.hint}\n${note}` : note,
        cause: err,
      });
    return new DevboxError('INTERNAL', errorText(err), { hint: note, cause: err });
  }
}

/**
 * `devbox up --devcontainer`: the sidecar, then `devcontainer up` of the
 * project's config joined to it. The pod's env goes through an env file (0600,
 * in a private temporary directory, removed once the container exists); the
 * pod's files are copied in before the lifecycle commands run. Published
 * ports (`-p`, `appPort`) are on the sidecar.
 */
export async function createDevcontainerSession(
  docker: DockerClient,
  spec: SessionSpec,
  options: DevcontainerSessionOptions,
): Promise<CreatedDevcontainerSession> {
  const { loaded, plan } = options.devcontainer;
  const sessionId = spec.session.id;
  const serviceName = spec.service.name ?? '';
  const sidecarName = sidecarContainerSpec(spec).name ?? '';
  await claimNames(docker, [sidecarName, serviceName], spec.session.workload);
  const workDir = await fs.mkdtemp(join(tmpdir(), 'devbox-devcontainer-'));
  const cli = (options.cli ?? ((dir) => devcontainerCli({ workDir: dir })))(workDir);
  const step = <T>(title: string, run: () => Promise<T>) =>
    options.progress ? options.progress.step(title, run) : run();
  const warnings = [...plan.notes, ...options.workspace.notes];
  try {
    const sidecar = await startSidecar(docker, spec, { ports: plan.publish, mounts: [] }, options);

    const env = formatEnvFile(spec.service.env ?? {});
    const envFile = join(workDir, 'pod.env');
    await writePrivateFile(envFile, env.text, { gitIgnore: false });
    const envFileKeys = Object.keys(spec.service.env ?? {}).filter((k) => !(k in env.rest));
    for (const key of Object.keys(env.rest)) warnings.push(envLeftOutWarning(key));
    const joined = joinedConfig(loaded.config, plan.runArgs, {
      sidecar: sidecar.id,
      ...(serviceName ? { name: serviceName } : {}),
      envFile,
      envFileKeys,
      ...(spec.service.mounts ? { mounts: spec.service.mounts } : {}),
      ...(options.workspace.mode === 'as-is' ? {} : { workspace: options.workspace }),
    });
    for (const key of joined.replaced)
      warnings.push(`containerEnv ${key} of ${loaded.configFile} is replaced by the pod's value`);
    const overrideConfig = join(workDir, 'devcontainer.json');
    await fs.writeFile(overrideConfig, `${JSON.stringify(joined.config, null, 2)}\n`, { mode: 0o600 });

    const files = spec.service.files;
    const hasFiles = files !== undefined && (!Array.isArray(files) || files.length > 0);
    const target = {
      workspaceFolder: loaded.workspaceFolder,
      configFile: loaded.configFile,
      overrideConfig,
      idLabels: sessionLabels(spec.session, 'service', spec.labels),
    };
    const run = {
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onOutput ? { onOutput: options.onOutput } : {}),
    };
    const up = await step('Building and starting the dev container (devcontainer up)', () =>
      cli.up({ ...target, skipPostCreate: hasFiles }, run),
    );
    if (hasFiles) {
      await putFiles(docker, up.containerId, files);
      await step("Running the dev container's lifecycle commands", () =>
        cli.runUserCommands({ ...target, containerId: up.containerId }, run),
      );
    }
    const info = await docker.inspectContainer(up.containerId);
    return {
      id: sessionId,
      sidecar,
      service: { id: up.containerId, name: info?.name ?? serviceName },
      remoteUser: up.remoteUser,
      remoteWorkspaceFolder: up.remoteWorkspaceFolder,
      warnings,
    };
  } catch (err) {
    // Awaited here, not returned: a rejected promise held across `finally` would go unhandled.
    throw await rollBack(
      docker,
      sessionId,
      options.signal?.aborted && !isDevboxError(err) ? options.signal.reason : err,
    );
  } finally {
    await fs.rm(workDir, { recursive: true, force: true });
  }
}

/** Where sidecar-only mode writes what an editor-made dev container reads. */
export interface SidecarOnlyFiles {
  /** `--env-file` with the pod's env (0600, git-ignored beside it). */
  envFile: string;
  /** `--label-file` with the session's labels, so `devbox down` finds the dev container. */
  labelFile: string;
}

export interface SidecarOnlyOptions {
  files: SidecarOnlyFiles;
  /** The pod container's volumeMounts, for the volumes shared with `--volumes-from`. */
  podMounts: readonly PodMount[];
  beforeJoin?: (sidecar: SessionContainer) => Promise<void>;
  signal?: AbortSignal;
}

export interface CreatedSidecarOnlySession {
  id: string;
  sidecar: SessionContainer;
  /** Name the dev container should take (`--name`), so `devbox` commands find it by name too. */
  service: string;
  volumes: { name: string; path: string }[];
  warnings: string[];
}

/**
 * `devbox up --sidecar-only`: the session without its service container. The
 * pod's volumes are named volumes on the sidecar (labelled with the session,
 * so `devbox down` removes them); the env and the labels are written to files
 * for `docker run --env-file/--label-file`.
 */
export async function createSidecarOnlySession(
  docker: DockerClient,
  spec: SessionSpec,
  options: SidecarOnlyOptions,
): Promise<CreatedSidecarOnlySession> {
  const sessionId = spec.session.id;
  const sidecarName = sidecarContainerSpec(spec).name ?? '';
  const serviceName = spec.service.name ?? '';
  await claimNames(docker, [sidecarName, serviceName], spec.session.workload);
  const { roots, warnings } = volumeRoots(spec.service.files, options.podMounts);
  const volumes = roots.map((path, i) => ({ name: sessionVolumeName(sessionId, i), path }));
  try {
    for (const volume of volumes) {
      await docker.createVolume(volume.name, { labels: { [SESSION_LABELS.session]: sessionId } });
    }
    const mounts: MountSpec[] = volumes.map((v) => ({ type: 'volume', source: v.name, target: v.path }));
    const sidecar = await startSidecar(
      docker,
      spec,
      { ports: [], mounts, ...(spec.service.files ? { files: spec.service.files } : {}) },
      options,
    );
    const env = formatEnvFile(spec.service.env ?? {});
    for (const key of Object.keys(env.rest)) warnings.push(envLeftOutWarning(key));
    await writePrivateFile(options.files.envFile, env.text);
    await writePrivateFile(
      options.files.labelFile,
      formatLabelFile(sessionLabels(spec.session, 'service', spec.labels)),
    );
    return { id: sessionId, sidecar, service: serviceName, volumes, warnings };
  } catch (err) {
    // Awaited here, not returned: a rejected promise held across `finally` would go unhandled.
    throw await rollBack(
      docker,
      sessionId,
      options.signal?.aborted && !isDevboxError(err) ? options.signal.reason : err,
    );
  }
}
