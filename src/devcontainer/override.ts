/**
 * The project's devcontainer.json, changed only where joining a devbox
 * session requires it: the sidecar's network (and its volumes), the pod's env
 * through an env file, devbox's own mounts and container name, and published
 * ports moved to the sidecar. Everything else (features, lifecycle commands,
 * the workspace mount, customizations) passes through unchanged.
 */
import type { BindMount } from '../docker/index.js';
import type { DevcontainerConfig } from './config.js';
import { parseRunArgs } from './join-plan.js';

export interface JoinSettings {
  /** The sidecar container (id or name) whose network the dev container joins. */
  sidecar: string;
  /** Container name for the dev container, unless runArgs name it already. */
  name?: string;
  /** `--env-file` for the pod's env (read by the docker CLI on this machine). */
  envFile?: string;
  /** `--label-file` with the session's labels (when devbox does not pass them as id labels). */
  labelFile?: string;
  /** Share the sidecar's volumes (the pod's volumes) with `--volumes-from`. */
  volumesFrom?: string;
  /** The user's own bind mounts (`devbox up -v`), with engine-side sources. */
  mounts?: readonly BindMount[];
  /** Set in containerEnv (values an env file cannot carry, devbox's own variables). */
  env?: Record<string, string>;
  /** Variables the env file sets: containerEnv entries with these names are dropped, the pod's value wins. */
  envFileKeys?: readonly string[];
  /** Replaces the workspace mount (a translated or copied workspace). */
  workspace?: { mount: string; folder: string };
}

/** One field of docker's CSV `--mount` value, quoted when it holds a comma or a quote. */
export function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** `--mount` for a bind mount. */
export function bindMountArg(mount: BindMount): string {
  const fields = [`type=bind`, csvField(`source=${mount.source}`), csvField(`target=${mount.target}`)];
  if (mount.readOnly) fields.push('readonly');
  return `--mount=${fields.join(',')}`;
}

/** Whether runArgs already give the container a name. */
function namesContainer(runArgs: readonly string[]): boolean {
  return parseRunArgs(runArgs).some((a) => a.flag === '--name');
}

/**
 * The devcontainer.json to pass as `--override-config`: `config` with
 * `runArgs` (already cleared of published ports, see `planJoin`) joined to
 * the sidecar, `appPort` removed, and containerEnv adjusted. Returns the
 * variables of containerEnv that the pod's env replaced, for a warning.
 */
export function joinedConfig(
  config: DevcontainerConfig,
  runArgs: readonly string[],
  join: JoinSettings,
): { config: DevcontainerConfig; replaced: string[] } {
  const args = [...runArgs];
  if (join.name && !namesContainer(runArgs)) args.push(`--name=${join.name}`);
  args.push(`--network=container:${join.sidecar}`);
  if (join.volumesFrom) args.push(`--volumes-from=${join.volumesFrom}`);
  if (join.envFile) args.push(`--env-file=${join.envFile}`);
  if (join.labelFile) args.push(`--label-file=${join.labelFile}`);
  for (const mount of join.mounts ?? []) args.push(bindMountArg(mount));

  const replaced: string[] = [];
  const fromFile = new Set(join.envFileKeys ?? []);
  const containerEnv: Record<string, string> = {};
  for (const [key, value] of Object.entries(config.containerEnv ?? {})) {
    if (fromFile.has(key) || join.env?.[key] !== undefined) replaced.push(key);
    else containerEnv[key] = value;
  }
  Object.assign(containerEnv, join.env ?? {});

  const out: DevcontainerConfig = { ...config, runArgs: args };
  delete out.appPort;
  if (Object.keys(containerEnv).length) out.containerEnv = containerEnv;
  else delete out.containerEnv;
  if (join.workspace) {
    out.workspaceMount = join.workspace.mount;
    out.workspaceFolder = join.workspace.folder;
  }
  return { config: out, replaced };
}
