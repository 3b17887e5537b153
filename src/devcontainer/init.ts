/**
 * `devbox devcontainer init <workload>`: a dev container configuration that
 * an editor opens on its own. Its `initializeCommand` (run on this machine
 * before the container is created) starts the session's sidecar with
 * `devbox up --sidecar-only`, which writes the pod's env and the session's
 * labels to files beside the configuration; `runArgs` join the sidecar's
 * network, share its volumes and read those files. Opening the folder in VS
 * Code or Codespaces is then all it takes.
 */
import { promises as fs } from 'node:fs';
import { basename, dirname, isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { connectDocker } from '../docker/connect.js';
import { containerNames, ensureRuntimeImage } from '../docker/index.js';
import { connectCluster } from '../kube/connect.js';
import { findWorkload, pickContainer, resolveWorkloadEnv } from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { DevboxError } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { type DevcontainerConfig, loadDevcontainer } from './config.js';
import { gitIgnoreBeside } from './env-file.js';
import { assertJoinable, planJoin } from './join-plan.js';
import { joinedConfig } from './override.js';
import { placeFolder } from './workspace.js';

export interface InitOptions {
  target: KubeTarget;
  workload: string;
  container?: string;
  /** Project folder (default: the current directory). */
  folder: string;
  /** Base image when the project has no devcontainer.json of its own (default: the pod container's image). */
  image?: string;
  /** How the editor's machine runs devbox (default `devbox`; e.g. `npx devbox`). */
  devboxCommand: string[];
  /** Overwrite a configuration written before. */
  force: boolean;
  progress: Progress;
}

export interface InitResult {
  configFile: string;
  /** The project's own configuration it was based on, if any. */
  basedOn?: string;
  /** The files `devbox up --sidecar-only` writes (git-ignored). */
  envFile: string;
  labelFile: string;
  workload: string;
  namespace: string;
  warnings: string[];
}

/** The session's container names, as `devbox up` gives them (the workload and its namespace). */
export function sessionContainerNames(
  workload: string,
  namespace: string,
): { sidecar: string; service: string } {
  return containerNames(`${workload}.${namespace}`);
}

/** Where the configuration for `workload` goes in `folder`. */
export function initPaths(folder: string, workloadName: string) {
  const dirName = `devbox-${containerNames(workloadName).service.slice('devbox-'.length)}`;
  const dir = join(folder, '.devcontainer', dirName);
  return {
    dir,
    configFile: join(dir, 'devcontainer.json'),
    envFile: join(dir, 'session.env'),
    labelFile: join(dir, 'session.labels'),
    /** The same files as the editor's CLI substitutes them. */
    inWorkspace: (file: string) => `\${localWorkspaceFolder}/${relative(folder, file).split(sep).join('/')}`,
  };
}

/** The project's main dev container configuration (not one of `.devcontainer/<name>/`). */
async function projectConfig(folder: string): Promise<string | undefined> {
  for (const file of [
    join(folder, '.devcontainer', 'devcontainer.json'),
    join(folder, '.devcontainer.json'),
  ]) {
    if ((await fs.stat(file).catch(() => undefined))?.isFile()) return file;
  }
  return undefined;
}

/** A path relative to `from`'s directory, rewritten relative to `to` (a directory). */
function rebase(path: string, fromDir: string, toDir: string): string {
  if (isAbsolute(path) || path.includes('${')) return path;
  const rewritten = relative(toDir, resolve(fromDir, path)).split(sep).join('/');
  return rewritten || '.';
}

/** The project's config with its relative paths (build, local features) valid from `toDir`. */
export function rebaseConfig(config: DevcontainerConfig, fromDir: string, toDir: string): DevcontainerConfig {
  const out: DevcontainerConfig = { ...config };
  if (config.build) {
    out.build = { ...config.build };
    if (typeof config.build.dockerfile === 'string')
      out.build.dockerfile = rebase(config.build.dockerfile, fromDir, toDir);
    out.build.context = rebase(
      typeof config.build.context === 'string' ? config.build.context : '.',
      fromDir,
      toDir,
    );
  }
  if (typeof config.dockerFile === 'string') {
    out.build = { ...(out.build ?? {}), dockerfile: rebase(config.dockerFile, fromDir, toDir) };
    out.build.context ??= rebase('.', fromDir, toDir);
    delete out.dockerFile;
  }
  if (config.features) {
    out.features = {};
    for (const [id, value] of Object.entries(config.features)) {
      const local = id.startsWith('./') || id.startsWith('../');
      const key = local ? rebase(id, fromDir, toDir) : id;
      out.features[local && !key.startsWith('.') ? `./${key}` : key] = value;
    }
  }
  return out;
}

/** The `initializeCommand` that starts the session's sidecar and writes the env and label files. */
export function initializeCommand(options: {
  devbox: string[];
  workload: string;
  namespace: string;
  context?: string;
  kubeconfig?: string;
  container?: string;
  envFile: string;
  labelFile: string;
  publish: string[];
}): string[] {
  const args = [...options.devbox, 'up', options.workload, '-n', options.namespace];
  if (options.context) args.push('--context', options.context);
  if (options.kubeconfig) args.push('--kubeconfig', options.kubeconfig);
  if (options.container) args.push('-c', options.container);
  for (const p of options.publish) args.push('-p', p);
  // Not --env-file: Node 20 reads that option anywhere on its command line, even after the script.
  args.push('--sidecar-only', '--write-env', options.envFile, '--write-labels', options.labelFile);
  return args;
}

/** `-p` value of a binding (as `docker run` reads it). */
function publishFlag(p: {
  hostIp?: string;
  hostPort?: number;
  containerPort: number;
  protocol?: string;
}): string {
  const ip = p.hostIp ? (p.hostIp.includes(':') ? `[${p.hostIp}]:` : `${p.hostIp}:`) : '';
  const host = p.hostPort ? `${p.hostPort}:` : ip ? ':' : '';
  return `${ip}${host}${p.containerPort}${p.protocol === 'udp' ? '/udp' : ''}`;
}

/**
 * Writes `.devcontainer/devbox-<workload>/devcontainer.json` (based on the
 * project's own dev container configuration when there is one) and a
 * `.gitignore` beside it for the files holding the pod's env.
 */
export async function initDevcontainer(options: InitOptions): Promise<InitResult> {
  const { progress } = options;
  const folder = resolve(options.folder);
  const client = await connectCluster(options.target, progress);
  try {
    const namespace = client.namespace;
    const { workload, app } = await progress.step(`Finding ${options.workload} in ${namespace}`, async () => {
      const workload = await findWorkload(client, options.workload, namespace);
      const services = (await client.list('Service', namespace)).items;
      return { workload, app: pickContainer(workload, services, options.container) };
    });
    const name = workload.metadata!.name!;
    const label = `${workload.kind.toLowerCase()}/${name}`;
    const paths = initPaths(folder, name);
    if (!options.force && (await fs.stat(paths.configFile).catch(() => undefined))) {
      throw new DevboxError('CONFLICT', `${paths.configFile} exists already`, {
        hint: 'Pass --force to write it again (your edits to it are lost).',
      });
    }
    const warnings: string[] = [];

    let base: DevcontainerConfig;
    let basedOn: string | undefined;
    let runArgs: string[] = [];
    let publish: string[] = [];
    const own = await projectConfig(folder);
    if (own && !options.image) {
      const loaded = await loadDevcontainer(own);
      const plan = planJoin(loaded.doc, loaded.config);
      assertJoinable(loaded.configFile, plan);
      base = rebaseConfig(loaded.config, dirname(loaded.configFile), paths.dir);
      basedOn = loaded.configFile;
      runArgs = plan.runArgs;
      publish = plan.publish.map(publishFlag);
      warnings.push(...plan.notes);
    } else {
      const image = options.image ?? app.image;
      if (!image)
        throw new DevboxError('BAD_INPUT', `container ${app.name} has no image`, { hint: 'pass --image' });
      base = { image };
      if (!options.image)
        warnings.push(
          `no devcontainer.json in ${folder}: the dev container runs ${image}, the pod's image, which needs /bin/sh; pass --image for another one`,
        );
    }

    const env = await progress.step(`Reading the env of ${app.name}`, () =>
      resolveWorkloadEnv(client, workload, app.name),
    );

    // The editor mounts the folder itself, unless the engine cannot see it (a remote engine,
    // or this runs in a container): then the configuration names a translated path or a copy.
    await fs.mkdir(paths.dir, { recursive: true });
    for (const file of [paths.envFile, paths.labelFile]) await gitIgnoreBeside(file);
    const docker = await connectDocker(progress);
    const runtime = await progress.step('Preparing the sidecar image', () => ensureRuntimeImage(docker));
    const workspace = await progress.step('Checking how the Docker engine sees the project', () =>
      placeFolder(
        docker,
        {
          folder,
          sample: join(paths.dir, '.gitignore'),
          target:
            typeof base.workspaceFolder === 'string' && base.workspaceFolder.startsWith('/')
              ? base.workspaceFolder
              : `/workspaces/${basename(folder)}`,
          userMount: typeof base.workspaceMount === 'string',
        },
        runtime.tag,
      ),
    );
    warnings.push(...workspace.notes);
    const names = sessionContainerNames(name, namespace);
    const joined = joinedConfig(base, runArgs, {
      sidecar: names.sidecar,
      name: names.service,
      volumesFrom: names.sidecar,
      envFile: paths.inWorkspace(paths.envFile),
      labelFile: paths.inWorkspace(paths.labelFile),
      envFileKeys: env.vars.map((v) => v.name),
      ...(workspace.mode === 'as-is' ? {} : { workspace }),
    });
    for (const key of joined.replaced) warnings.push(`containerEnv ${key} is left out: the pod sets it`);
    const command = initializeCommand({
      devbox: options.devboxCommand,
      workload: label,
      namespace,
      ...(options.target.context ? { context: options.target.context } : {}),
      ...(options.target.kubeconfig ? { kubeconfig: resolve(options.target.kubeconfig) } : {}),
      ...(options.container ? { container: options.container } : {}),
      envFile: paths.inWorkspace(paths.envFile),
      labelFile: paths.inWorkspace(paths.labelFile),
      publish,
    });
    const config: DevcontainerConfig = {
      name: `${name} (devbox, ${namespace})`,
      ...joined.config,
      initializeCommand:
        base.initializeCommand === undefined ? command : { project: base.initializeCommand, devbox: command },
    };

    await fs.writeFile(paths.configFile, renderConfig(config, { label, namespace, basedOn, folder }));
    return {
      configFile: paths.configFile,
      ...(basedOn ? { basedOn } : {}),
      envFile: paths.envFile,
      labelFile: paths.labelFile,
      workload: label,
      namespace,
      warnings,
    };
  } finally {
    client.close();
  }
}

function renderConfig(
  config: DevcontainerConfig,
  about: { label: string; namespace: string; basedOn: string | undefined; folder: string },
): string {
  const source = about.basedOn
    ? `Based on ${posix.normalize(relative(about.folder, about.basedOn).split(sep).join('/'))}; run \`devbox devcontainer init --force\` again after changing it.`
    : 'Change the image or add features as for any dev container.';
  return `// Runs ${about.label} (namespace ${about.namespace}) in this dev container, as devbox does:
// initializeCommand starts the session's sidecar on this machine (cluster DNS and
// addresses, traffic of the workload's Services) and writes the pod's env to
// session.env (git-ignored, readable by you alone); runArgs join the sidecar's
// network and volumes. \`devbox down ${about.label} -n ${about.namespace}\` ends the session,
// restores the cluster and removes this container.
// ${source}
${JSON.stringify(config, null, 2)}
`;
}
