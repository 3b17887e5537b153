/**
 * `devbox up`: the workload's pod, as a local container. Order matters for
 * safety: everything that can be checked is checked before the cluster is
 * touched; every cluster change is registered for undo at once, so a failure
 * or Ctrl-C at any step leaves nothing behind (and a killed CLI leaves records
 * `devbox down`/`clean` restore from).
 */
import { promises as fs } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import type { V1Container, V1Service } from '@kubernetes/client-node';
import {
  createDevcontainerSession,
  createSidecarOnlySession,
  placeWorkspace,
  prepareDevcontainer,
  type SidecarOnlyFiles,
} from '../devcontainer/index.js';
import { connectDocker } from '../docker/connect.js';
import {
  buildDirectory,
  containerNames,
  createSession,
  type DockerClient,
  ensureRuntimeImage,
  findSessions,
  newSessionId,
  parsePublishFlag,
  parseVolumeFlag,
  readSidecarBundle,
  removeSession,
  resolveBindMounts,
  type SessionSpec,
  waitSidecarReady,
} from '../docker/index.js';
import { connectCluster } from '../kube/connect.js';
import {
  AGENT_CONTAINER,
  assertNotIntercepted,
  assertPermissions,
  findWorkload,
  getWorkload,
  isSameHolder,
  type KubeClient,
  labelSelectorString,
  pickContainer,
  planIntercept,
  podTemplate,
  type ResolvedEnvVar,
  resolveWorkloadEnv,
  restoreSession,
  type SessionHolder,
  sessionOf,
  type Workload,
  writeServices,
  writeWorkload,
} from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { settings } from '../settings/index.js';
import { type AgentLaunch, decodeAgentContainerEnv } from '../tunnel/agent-contract.js';
import { DevboxError, errorText, isDevboxError } from '../util/errors.js';
import type { Progress } from '../util/progress.js';
import { deleteAgentObjects, readAgentToken, writeAgentObjects } from './agent-objects.js';
import { openAgentTunnel } from './agent-tunnel.js';
import { apiAddressForContainer } from './api-address.js';
import { readAgentBundle } from './bundles.js';
import { podDnsSettings } from './dns-settings.js';
import { serviceVariablesOnAliases } from './fallback-env.js';
import { parseEnvFlags } from './flags.js';
import { podFilesTar, resolvePodFiles } from './pod-files.js';
import { waitForRollout } from './rollout.js';
import { sidecarCredentials } from './sidecar-account.js';

export interface UpOptions {
  target: KubeTarget;
  workload: string;
  container?: string;
  /** Local image instead of the workload's. */
  image?: string;
  /** Build the image from this directory (`--build`). */
  build?: { dir: string; dockerfile?: string };
  env: string[];
  volumes: string[];
  publish: string[];
  workdir?: string;
  /** Replaces the container's command (after `--`). */
  command: string[];
  /** Image of the agent container in the pod (must be pullable by the cluster). */
  agentImage: string;
  rolloutTimeoutMs: number;
  readyTimeoutMs: number;
  /** Run the service container with a TTY (foreground on a terminal). */
  tty: boolean;
  /** The project's devcontainer.json (folder or file) runs as the service container. */
  devcontainer?: { path: string; onOutput?: (line: string) => void };
  /** No service container: an editor creates the dev container from these files (see `devbox devcontainer init`). */
  sidecarOnly?: SidecarOnlyFiles;
  progress: Progress;
  signal: AbortSignal;
}

export interface UpResult {
  session: string;
  /** The pod's container the session stands for (unknown when a running sidecar was reused). */
  container?: string;
  workload: string;
  namespace: string;
  context: string;
  containers: { sidecar: string; service: string; serviceId: string };
  intercepted: { service: string; port: number; protocol: string; appPort: number }[];
  /** True when an agent left in place by this user was reused (no rollout). */
  resumed: boolean;
  warnings: string[];
  /** With `devcontainer`: what the Dev Containers CLI reported. */
  devcontainer?: { configFile: string; remoteUser: string; remoteWorkspaceFolder: string };
  /** With `sidecarOnly`: where the env and labels were written. */
  files?: SidecarOnlyFiles;
}

/** The sidecar's status endpoint inside the session's network namespace. */
const SIDECAR_STATUS_PORT = 47100;

/** Undo steps, run newest first. */
class UndoStack {
  private readonly steps: { what: string; run: () => Promise<unknown> }[] = [];
  push(what: string, run: () => Promise<unknown>): void {
    this.steps.push({ what, run });
  }
  async unwind(progress: Progress): Promise<string[]> {
    const failures: string[] = [];
    while (this.steps.length) {
      const step = this.steps.pop()!;
      try {
        await progress.step(`Undoing: ${step.what}`, step.run);
      } catch (err) {
        failures.push(`${step.what}: ${errorText(err)}`);
      }
    }
    return failures;
  }
}

export async function up(options: UpOptions): Promise<UpResult> {
  const { progress, signal } = options;
  // Ctrl-C between steps stops before the next one; the undo below does the rest.
  const step = <T>(title: string, run: () => Promise<T>): Promise<T> => {
    signal.throwIfAborted();
    return progress.step(title, run);
  };
  const env = parseEnvFlags(options.env);
  const publish = options.publish.map(parsePublishFlag);
  const volumes = options.volumes.map(parseVolumeFlag);
  const devcontainer = options.devcontainer && (await prepareDevcontainer(options.devcontainer.path));

  const client = await connectCluster(options.target, progress);
  const docker = await connectDocker(progress);
  const undo = new UndoStack();
  try {
    const namespace = client.namespace;
    await step(`Checking your permissions in ${namespace}`, () => assertPermissions(client, namespace, 'up'));
    const sidecarToken = await step(`Checking the sidecar's account in ${namespace}`, () =>
      sidecarCredentials(client, options.target, namespace, 12 * 3600),
    );
    const { workload, services, app } = await step(
      `Finding ${options.workload} in ${namespace}`,
      async () => {
        const workload = await findWorkload(client, options.workload, namespace);
        const services = (await client.list('Service', namespace)).items;
        return { workload, services, app: pickContainer(workload, services, options.container) };
      },
    );
    const name = workload.metadata!.name!;
    const label = `${workload.kind.toLowerCase()}/${name}`;
    const me = { user: userInfo().username, host: hostname() };
    const holder = sessionOf(workload);
    const resume = holder !== undefined && isSameHolder(holder, me);
    if (!resume) assertNotIntercepted(workload);
    const running = await findSessions(docker, { workload: label, namespace });
    if (options.sidecarOnly) {
      const live = running.find((s) => s.sidecar?.state === 'running');
      if (live && (await filesExist(options.sidecarOnly)))
        return reusedSidecar(live, label, namespace, client.cluster.context, options.sidecarOnly);
      if (live) {
        await removeSession(docker, live.id);
        running.splice(running.indexOf(live), 1);
      }
    }
    if (running.some((s) => s.state !== 'stopped')) {
      throw new DevboxError('CONFLICT', `${label} already runs locally (session ${running[0]!.id})`, {
        hint: `see it with \`devbox status\`; end it with \`devbox down ${name} -n ${namespace}\``,
      });
    }
    for (const stale of running) await removeSession(docker, stale.id);

    const bind = await resolveBindMounts(docker, volumes);
    const serviceImage =
      devcontainer || options.sidecarOnly ? '' : await prepareServiceImage(docker, options, app, progress);
    const runtime = await step('Preparing the sidecar image', () => ensureRuntimeImage(docker));
    const workspace =
      devcontainer &&
      (await step('Checking how the Docker engine sees the workspace', () =>
        placeWorkspace(docker, devcontainer.loaded, runtime.tag),
      ));
    const [sidecarBundle, agentBundle] = await Promise.all([readSidecarBundle(), readAgentBundle()]);
    const warnings = [...bind.notes, ...portClashes(app, services)];

    const sessionId = resume ? holder!.id : newSessionId();
    const sessionHolder: SessionHolder = resume
      ? holder!
      : { ...me, startedAt: new Date().toISOString(), id: sessionId };

    // From here on the cluster changes; each change is undone if a later step fails.
    let token: string;
    let tunnelPort: number;
    let intercepted: UpResult['intercepted'];
    if (resume) {
      const agent = podTemplate(workload).spec?.containers.find((c) => c.name === AGENT_CONTAINER);
      const existing = await readAgentToken(client, workload);
      if (!agent || !existing) {
        throw new DevboxError('CONFLICT', `${label} carries a session of yours but its agent is incomplete`, {
          hint: `run \`devbox down ${name} -n ${namespace}\` and try again`,
        });
      }
      token = existing;
      const launch = decodeAgentContainerEnv(
        agent.env,
        `run \`devbox down ${name} -n ${namespace}\` and try again`,
      );
      tunnelPort = launch.tunnelPort;
      intercepted = interceptedFromAgent(launch);
      progress.note(`reusing the agent already in ${label}`);
    } else {
      undo.push('removing the agent bundle and token', () =>
        deleteAgentObjects(client, namespace, workload.kind, name),
      );
      const objects = await writeAgentObjects(client, workload, agentBundle);
      token = objects.token;
      const planFor = (w: Workload) =>
        planIntercept({
          workload: w,
          services,
          container: app.name,
          holder: sessionHolder,
          agent: {
            image: options.agentImage,
            bundleConfigMap: objects.configMap,
            tokenSecret: objects.secret,
          },
        });
      let plan = planFor(workload);
      warnings.push(...plan.warnings);
      if (plan.rollout === 'paused' || plan.rollout === 'no-replicas') {
        throw new DevboxError(
          'BAD_INPUT',
          `${label} ${plan.rollout === 'paused' ? 'is paused' : 'has no replicas'}`,
          {
            hint:
              plan.rollout === 'paused'
                ? `resume it: kubectl rollout resume ${label} -n ${namespace}`
                : `scale it up: kubectl scale ${label} --replicas=1 -n ${namespace}`,
          },
        );
      }
      undo.push(`restoring ${label} and its Services`, () =>
        restoreSession(client, namespace, workload.kind, name),
      );
      await step(`Adding the agent to ${label}`, async () => {
        // Controllers update the object (its status) all the time: on a conflict, read it again and replan.
        for (let attempt = 1; ; attempt++) {
          try {
            return await writeWorkload(client, plan.workload);
          } catch (err) {
            if (!isDevboxError(err, 'CONFLICT') || attempt === 5) throw err;
            const fresh = await getWorkload(client, workload.kind, namespace, name);
            if (!fresh) throw err;
            assertNotIntercepted(fresh);
            plan = planFor(fresh);
          }
        }
      });
      // Services whose new target resolves as before in the old pods go first: new pods then
      // never serve a client directly. The others would lose the old pods' endpoints, so they wait.
      const first = plan.services.filter((s) => plan.servicesFirst.includes(s.metadata?.name ?? ''));
      const afterRollout = plan.services.filter((s) => !first.includes(s));
      const pointServices = (list: V1Service[]) =>
        step(`Pointing ${list.map((s) => `service/${s.metadata?.name}`).join(', ')} at the agent`, () =>
          writeServices(client, list),
        );
      if (first.length) await pointServices(first);
      if (plan.rollout === 'delete-pods') await deletePodsWithoutAgent(client, workload);
      await step(`Waiting for ${label} to roll out`, () =>
        waitForRollout(client, workload, { timeoutMs: options.rolloutTimeoutMs, signal }),
      );
      if (afterRollout.length) await pointServices(afterRollout);
      tunnelPort = plan.tunnelPort;
      intercepted = plan.ports.map((p) => ({
        service: p.service,
        port: p.port,
        protocol: p.protocol,
        appPort: p.appPort,
      }));
    }

    const podEnv = await step(`Resolving the env of ${app.name}`, () =>
      resolveWorkloadEnv(client, workload, app.name),
    );
    warnings.push(...podEnv.warnings);

    const api = await apiAddressForContainer(client.cluster.server, client.cluster.tlsServerName);
    const dns = podDnsSettings(workload, namespace);
    const sidecarConfig = {
      apiServer: api.server,
      tokenFile: '/devbox/token',
      ca: client.cluster.caPem,
      tlsServerName: api.tlsServerName,
      namespace,
      agentSelector: labelSelectorString(workload.spec?.selector),
      agentContainer: AGENT_CONTAINER,
      sessionToken: token,
      agentTunnelPort: tunnelPort,
      interceptPorts: dedupe(intercepted.map((p) => p.appPort)).map((port) => ({ port, appPort: port })),
      statusPort: SIDECAR_STATUS_PORT,
      portForward: settings().portForward,
    };

    const names = containerNames(`${name}.${namespace}`);
    const serviceEnv = mergeEnv(podEnv.vars, env, sessionId);
    const podFiles = await step(`Reading the volumes of ${app.name}`, () =>
      resolvePodFiles(client, workload, app.name, serviceEnv),
    );
    warnings.push(...podFiles.layout.warnings);
    const agentTunnel = podFiles.layout.copies.length
      ? await openAgentTunnel(client, workload, tunnelPort, token, signal).catch((err) => {
          warnings.push(`volume contents not copied: ${errorText(err)}`);
          return undefined;
        })
      : undefined;
    undo.push('removing the local containers', () => removeSession(docker, sessionId));
    const spec: SessionSpec = {
      session: { id: sessionId, workload: label, namespace, context: client.cluster.context },
      sidecar: {
        image: runtime.tag,
        bundle: sidecarBundle,
        config: sidecarConfig,
        files: [{ path: '/devbox/token', content: sidecarToken.token, mode: 0o600 }],
        dnsSearch: dns.search,
        dnsOptions: dns.options,
        extraHosts: api.extraHosts,
        ports: publish,
        hostname: name,
        name: names.sidecar,
      },
      service: {
        image: serviceImage,
        ...(options.command.length
          ? { entrypoint: options.command.slice(0, 1), cmd: options.command.slice(1) }
          : commandOf(app)),
        env: serviceEnv,
        files: { tar: podFilesTar(podFiles.layout, agentTunnel, warnings) },
        ...((options.workdir ?? app.workingDir) ? { workingDir: options.workdir ?? app.workingDir } : {}),
        mounts: bind.mounts,
        tty: options.tty,
        openStdin: options.tty,
        init: true,
        name: names.service,
      },
    };
    const waitReady = async (sidecar: { id: string }) => {
      const ready = await waitSidecarReady(docker, sidecar.id, {
        timeoutMs: options.readyTimeoutMs,
        intervalMs: 100,
        signal,
      });
      if (ready.addressMode === 'fallback' && spec.service.env) {
        // spec.service is read after this hook by every way of starting the service container.
        const aliases = new Map(ready.addresses.flatMap((a) => (a.local ? [[a.ip, a.local] as const] : [])));
        const moved = serviceVariablesOnAliases(spec.service.env, aliases);
        spec.service.env = moved.env;
        if (moved.changed.length)
          progress.note(
            `no NET_ADMIN: ${moved.changed.length} Service variables point at the sidecar's 127.x aliases`,
          );
      }
    };
    let extra: Pick<UpResult, 'devcontainer' | 'files'> = {};
    let created: { sidecar: { name: string }; service: { id: string; name: string } };
    if (devcontainer && workspace) {
      const made = await step('Starting the sidecar and the dev container', () =>
        createDevcontainerSession(docker, spec, {
          devcontainer,
          workspace,
          beforeJoin: waitReady,
          signal,
          ...(options.devcontainer?.onOutput ? { onOutput: options.devcontainer.onOutput } : {}),
        }),
      );
      warnings.push(...made.warnings);
      created = made;
      extra = {
        devcontainer: {
          configFile: devcontainer.loaded.configFile,
          remoteUser: made.remoteUser,
          remoteWorkspaceFolder: made.remoteWorkspaceFolder,
        },
      };
    } else if (options.sidecarOnly) {
      const made = await step('Starting the sidecar', () =>
        createSidecarOnlySession(docker, spec, {
          files: options.sidecarOnly!,
          podMounts: app.volumeMounts ?? [],
          beforeJoin: waitReady,
          signal,
        }),
      );
      warnings.push(...made.warnings);
      created = { sidecar: made.sidecar, service: { id: '', name: made.service } };
      extra = { files: options.sidecarOnly };
    } else {
      created = await step('Starting the sidecar and the service container', () =>
        createSession(docker, spec, { signal, beforeService: waitReady }),
      );
    }

    await agentTunnel?.close();
    return {
      session: sessionId,
      container: app.name,
      workload: label,
      namespace,
      context: client.cluster.context,
      containers: {
        sidecar: created.sidecar.name,
        service: created.service.name,
        serviceId: created.service.id,
      },
      intercepted,
      resumed: resume,
      warnings,
      ...extra,
    };
  } catch (err) {
    const failures = await undo.unwind(progress);
    if (failures.length) {
      throw new DevboxError('INTERNAL', `${errorText(err)}; undoing it failed too`, {
        hint: `${failures.join('\n')}\nRun \`devbox clean -n ${client.namespace}\` to finish the clean-up.`,
        cause: err,
      });
    }
    throw err;
  } finally {
    client.close();
  }
}

/** True when both files of a sidecar-only session exist. */
async function filesExist(files: SidecarOnlyFiles): Promise<boolean> {
  const exists = (p: string) =>
    fs.stat(p).then(
      () => true,
      () => false,
    );
  return (await exists(files.envFile)) && (await exists(files.labelFile));
}

/** A sidecar-only session already running: the editor's dev container joins it again. */
function reusedSidecar(
  live: { id: string; sidecar?: { name: string }; service?: { id: string; name: string } },
  workload: string,
  namespace: string,
  context: string,
  files: SidecarOnlyFiles,
): UpResult {
  return {
    session: live.id,
    workload,
    namespace,
    context,
    containers: {
      sidecar: live.sidecar?.name ?? '',
      service: live.service?.name ?? '',
      serviceId: live.service?.id ?? '',
    },
    intercepted: [],
    resumed: true,
    warnings: [`the sidecar of session ${live.id} already runs; it is reused with the env written before`],
    files,
  };
}

async function prepareServiceImage(
  docker: DockerClient,
  options: UpOptions,
  app: V1Container,
  progress: Progress,
): Promise<string> {
  if (options.build) {
    const { dir, dockerfile } = options.build;
    const built = await progress.step(`Building ${dir}`, () =>
      buildDirectory(docker, dir, dockerfile ? { dockerfile } : {}),
    );
    return built.tag;
  }
  const image = options.image ?? app.image;
  if (!image)
    throw new DevboxError('BAD_INPUT', `container ${app.name} has no image`, { hint: 'pass --image' });
  if (!(await docker.imageExists(image))) {
    throw new DevboxError('NOT_FOUND', `image ${image} is not in the local Docker engine`, {
      hint: `pull or build it first, or pass --image <local image> or --build <dir>`,
    });
  }
  return image;
}

/** The pod container's own command, unless the user gave one. */
function commandOf(app: V1Container): { entrypoint?: string[]; cmd?: string[] } {
  const out: { entrypoint?: string[]; cmd?: string[] } = {};
  if (app.command?.length) out.entrypoint = app.command;
  if (app.args?.length) out.cmd = app.args;
  return out;
}

/** Pod env, then the user's `-e` (which win), then DEVBOX_SESSION for apps that want to know. */
function mergeEnv(
  pod: ResolvedEnvVar[],
  flags: Record<string, string>,
  session: string,
): Record<string, string> {
  return { ...Object.fromEntries(pod.map((v) => [v.name, v.value])), ...flags, DEVBOX_SESSION: session };
}

/** The intercepts of an agent already in place (Service names are not part of its env). */
function interceptedFromAgent(launch: AgentLaunch): UpResult['intercepted'] {
  return launch.intercepts.map(({ appPort }) => ({ service: '', port: appPort, protocol: 'TCP', appPort }));
}

/**
 * The local app and the sidecar's Service listeners share one network
 * namespace: a Service port equal to a port the app binds cannot be served to
 * the local container (and an app binding it on all addresses fails to start).
 */
export function portClashes(app: V1Container, services: readonly V1Service[]): string[] {
  const appPorts = new Set((app.ports ?? []).map((p) => p.containerPort));
  const out: string[] = [];
  for (const svc of services) {
    if (!svc.spec?.clusterIP || svc.spec.clusterIP === 'None') continue;
    for (const port of svc.spec.ports ?? []) {
      if (!appPorts.has(port.port)) continue;
      out.push(
        `service/${svc.metadata?.name} uses port ${port.port}, which ${app.name} listens on too: both share the ` +
          `local network, so ${svc.metadata?.name}:${port.port} cannot be reached from the local container ` +
          `(bind the app to 127.0.0.1:${port.port}, or run it on another port with -e/--)`,
      );
    }
  }
  return out;
}

function dedupe(values: number[]): number[] {
  return [...new Set(values)];
}

async function deletePodsWithoutAgent(client: KubeClient, workload: Workload): Promise<void> {
  const namespace = workload.metadata!.namespace!;
  const pods = await client.list('Pod', namespace, {
    labelSelector: labelSelectorString(workload.spec?.selector),
  });
  for (const pod of pods.items) {
    if (!pod.spec?.containers.some((c) => c.name === AGENT_CONTAINER)) {
      await client.delete('Pod', namespace, pod.metadata!.name!);
    }
  }
}
