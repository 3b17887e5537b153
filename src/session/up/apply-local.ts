/**
 * The local half of `up`'s last stage: the pod's env and files resolved for the local container,
 * the sidecar's configuration, and the containers started (plain, dev container, or sidecar only).
 */
import { isIP, isIPv6 } from 'node:net';
import { createDevcontainerSession, createSidecarOnlySession } from '../../devcontainer/index.js';
import {
  containerNames,
  createSession,
  removeSession,
  type SessionSpec,
  waitSidecarReady,
} from '../../docker/index.js';
import {
  AGENT_CONTAINER,
  defaultSessionName,
  labelSelectorString,
  resolveWorkloadEnv,
} from '../../kube/index.js';
import { settings } from '../../settings/index.js';
import { TunnelClient } from '../../tunnel/index.js';
import { errorText } from '../../util/errors.js';
import { sessionLeaseName } from '../../util/session-lease.js';
import { openAgentTunnel } from '../agent-tunnel.js';
import { apiAddressForContainer } from '../api-address.js';
import { podDnsSettings } from '../dns-settings.js';
import { serviceVariablesOnAliases } from '../fallback-env.js';
import { podFilesTar, resolvePodFiles } from '../pod-files.js';
import type { ClusterSessionWithToken, UpContext, UpPlan, UpResult } from './types.js';
import type { UndoStack } from './undo.js';

/** The sidecar's status endpoint inside the session's network namespace. */
const SIDECAR_STATUS_PORT = 47100;

type Started = Pick<UpResult, 'containers' | 'devcontainer' | 'files'>;

/** Starts the local containers of the session; returns them with what else the user should know. */
export async function applyLocal(
  ctx: UpContext,
  plan: UpPlan,
  cluster: ClusterSessionWithToken,
  undo: UndoStack,
): Promise<Started> {
  const { target: v } = plan;
  for (const stale of v.staleLocal) await removeSession(ctx.docker, stale.id);
  // Opened once, by the first that needs it: env resolution (only when the master Service is
  // forbidden) or the copy of the pod's volumes.
  let tunnel: Promise<TunnelClient | Error | undefined> | undefined;
  const agentTunnel = () =>
    (tunnel ??= openAgentTunnel(
      ctx.client,
      v.workload,
      cluster.tunnelPort,
      cluster.token,
      { id: plan.session.id, route: plan.flags.route },
      ctx.signal,
    ).catch((err: Error) => err));
  const podEnv = await ctx.step(`Resolving the env of ${v.app.name}`, () =>
    resolveWorkloadEnv(ctx.client, v.workload, v.app.name, {
      kubernetesService: async () => {
        const agent = await agentTunnel();
        return agent instanceof TunnelClient ? agent.hello.kubernetesService : undefined;
      },
    }),
  );
  plan.warnings.push(...podEnv.warnings);
  const serviceEnv: Record<string, string> = {
    ...Object.fromEntries(podEnv.vars.map((e) => [e.name, e.value])),
    // The user's `-e` win; DEVBOX_SESSION tells apps that want to know.
    ...plan.flags.env,
    DEVBOX_SESSION: plan.session.id,
  };
  const sidecar = await sidecarSpec(ctx, plan, cluster, serviceEnv);
  const podFiles = await ctx.step(`Reading the volumes of ${v.app.name}`, () =>
    resolvePodFiles(ctx.client, v.workload, v.app.name, serviceEnv),
  );
  plan.warnings.push(...podFiles.layout.warnings);
  const copyTunnel = podFiles.layout.copies.length ? await agentTunnel() : undefined;
  if (copyTunnel instanceof Error) plan.warnings.push(`volume contents not copied: ${errorText(copyTunnel)}`);
  undo.push('removing the local containers', () => removeSession(ctx.docker, plan.session.id));
  const { options } = ctx;
  const command = options.command.length
    ? { entrypoint: options.command.slice(0, 1), cmd: options.command.slice(1) }
    : {
        ...(v.app.command?.length ? { entrypoint: v.app.command } : {}),
        ...(v.app.args?.length ? { cmd: v.app.args } : {}),
      };
  const workingDir = options.workdir ?? v.app.workingDir;
  const spec: SessionSpec = {
    session: {
      id: plan.session.id,
      workload: v.label,
      namespace: v.namespace,
      context: ctx.client.cluster.context,
      name: plan.session.name,
    },
    sidecar,
    service: {
      image: plan.images.service,
      ...command,
      env: serviceEnv,
      files: {
        tar: podFilesTar(
          podFiles.layout,
          copyTunnel instanceof Error ? undefined : copyTunnel,
          plan.warnings,
        ),
      },
      ...(workingDir ? { workingDir } : {}),
      mounts: v.mounts.mounts,
      tty: options.tty,
      openStdin: options.tty,
      init: true,
      name: localNames(plan).service,
    },
  };
  const started = await startContainers(ctx, plan, spec);
  const opened = await tunnel;
  if (opened instanceof TunnelClient) await opened.close();
  return started;
}

/** The sidecar: its token, how it reaches the API server and the agents, the pod's DNS settings. */
async function sidecarSpec(
  ctx: UpContext,
  plan: UpPlan,
  cluster: ClusterSessionWithToken,
  serviceEnv: Record<string, string>,
): Promise<SessionSpec['sidecar']> {
  const { client } = ctx;
  const { target: v } = plan;
  const api = await apiAddressForContainer(client.cluster.server, client.cluster.tlsServerName);
  const dns = podDnsSettings(v.workload, v.namespace);
  const appPorts = [...new Set(cluster.intercepted.map((p) => p.appPort))];
  return {
    image: plan.images.runtime.tag,
    bundle: plan.bundles.sidecar,
    config: {
      apiServer: api.server,
      tokenFile: '/devbox/token',
      ca: client.cluster.caPem,
      tlsServerName: api.tlsServerName,
      namespace: v.namespace,
      agentSelector: labelSelectorString(v.workload.spec?.selector),
      agentContainer: AGENT_CONTAINER,
      sessionToken: cluster.token,
      agentTunnelPort: cluster.tunnelPort,
      interceptPorts: appPorts.map((port) => ({ port, appPort: port })),
      // Never bound by the sidecar: the app may listen on any port it declares.
      appPorts: [...new Set((v.app.ports ?? []).map((p) => p.containerPort))],
      // The pod reaches the API server at KUBERNETES_SERVICE_HOST:PORT; so does the local container.
      ...kubernetesService(serviceEnv),
      statusPort: SIDECAR_STATUS_PORT,
      portForward: settings().portForward,
      sessionLease: sessionLeaseName(plan.session.id),
      sessionId: plan.session.id,
      // The personal key travels only here: the config file is root-only in the developer's sidecar.
      ...(plan.flags.route.mode === 'global' ? {} : { route: plan.flags.route }),
      tokenRefresh: cluster.sidecarToken.refresh,
    },
    files: [{ path: '/devbox/token', content: cluster.sidecarToken.minted.token, mode: 0o600 }],
    dnsSearch: dns.search,
    dnsOptions: dns.options,
    extraHosts: api.extraHosts,
    ports: plan.flags.publish,
    hostname: v.name,
    name: localNames(plan).sidecar,
  };
}

/**
 * The local containers' names: `devbox-api.shop` for the session named after its user, as
 * before names existed (an editor's dev container configuration refers to it), and
 * `devbox-api.shop.<name>` for any other, so sessions of one workload share a Docker engine.
 */
function localNames(plan: UpPlan): { sidecar: string; service: string } {
  const { target: v, session } = plan;
  const base = `${v.name}.${v.namespace}`;
  return containerNames(session.name === defaultSessionName(session.user) ? base : `${base}.${session.name}`);
}

/** The pod env's address of the API server (`kubernetes.default`), as the sidecar config takes it. */
function kubernetesService(env: Record<string, string>): { kubernetesService?: string } {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port || !isIP(host)) return {};
  return { kubernetesService: isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}` };
}

/** Starts the sidecar, waits for it, then the service side: a container, a dev container, or none. */
async function startContainers(ctx: UpContext, plan: UpPlan, spec: SessionSpec): Promise<Started> {
  const { docker, options, signal } = ctx;
  const beforeJoin = (sidecar: { id: string }) => waitReady(ctx, spec, sidecar);
  const devcontainer = plan.flags.devcontainer;
  if (devcontainer && plan.workspace) {
    const workspace = plan.workspace;
    const made = await ctx.step('Starting the sidecar and the dev container', () =>
      createDevcontainerSession(docker, spec, {
        devcontainer,
        workspace,
        beforeJoin,
        signal,
        ...(options.devcontainer?.onOutput ? { onOutput: options.devcontainer.onOutput } : {}),
      }),
    );
    plan.warnings.push(...made.warnings);
    return {
      containers: { sidecar: made.sidecar.name, service: made.service.name, serviceId: made.service.id },
      devcontainer: {
        configFile: devcontainer.loaded.configFile,
        remoteUser: made.remoteUser,
        remoteWorkspaceFolder: made.remoteWorkspaceFolder,
      },
    };
  }
  if (options.sidecarOnly) {
    const files = options.sidecarOnly;
    const made = await ctx.step('Starting the sidecar', () =>
      createSidecarOnlySession(docker, spec, {
        files,
        podMounts: plan.target.app.volumeMounts ?? [],
        beforeJoin,
        signal,
      }),
    );
    plan.warnings.push(...made.warnings);
    return { containers: { sidecar: made.sidecar.name, service: made.service, serviceId: '' }, files };
  }
  const made = await ctx.step('Starting the sidecar and the service container', () =>
    createSession(docker, spec, { signal, beforeService: beforeJoin }),
  );
  return {
    containers: { sidecar: made.sidecar.name, service: made.service.name, serviceId: made.service.id },
  };
}

/**
 * Waits for the sidecar. Without NET_ADMIN it serves Services on 127.x aliases: the service
 * container's Service variables then point there (spec.service is read after this hook by every
 * way of starting the service container).
 */
async function waitReady(ctx: UpContext, spec: SessionSpec, sidecar: { id: string }): Promise<void> {
  const ready = await waitSidecarReady(ctx.docker, sidecar.id, {
    timeoutMs: ctx.options.readyTimeoutMs,
    intervalMs: 100,
    signal: ctx.signal,
  });
  if (ready.addressMode !== 'nat') {
    // Without NAT the sidecar binds cluster addresses, and keeps off the app's ports: say which it skipped.
    const skipped = ready.addresses.filter((a) => a.error?.includes('not served'));
    if (skipped.length)
      ctx.progress.note(
        `no NAT in the sidecar (${ready.addressMode}): not reachable from the local container, as their ports are the app's: ` +
          skipped.map((a) => `${a.owners.join(',')} ${a.ip} (${a.error})`).join('; '),
      );
  }
  if (ready.addressMode !== 'fallback' || !spec.service.env) return;
  const aliases = new Map(ready.addresses.flatMap((a) => (a.local ? [[a.ip, a.local] as const] : [])));
  const moved = serviceVariablesOnAliases(spec.service.env, aliases);
  spec.service.env = moved.env;
  if (moved.changed.length)
    ctx.progress.note(
      `no NET_ADMIN: ${moved.changed.length} Service variables point at the sidecar's 127.x aliases`,
    );
}
