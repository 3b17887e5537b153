/**
 * The second stage of `up`: what the session will be, decided before the first change — its
 * identity, the images it runs, and what changes in the cluster (a fresh intercept, or the agent
 * this user left in place).
 */
import { createHash } from 'node:crypto';
import type { V1Container } from '@kubernetes/client-node';
import { placeWorkspace } from '../../devcontainer/index.js';
import {
  buildDirectory,
  type DockerClient,
  ensureRuntimeImage,
  newSessionId,
  readSidecarBundle,
} from '../../docker/index.js';
import {
  AGENT_CONTAINER,
  agentObjectNames,
  type InterceptPlan,
  planIntercept,
  podTemplate,
  type SessionHolder,
  type SessionRecord,
  type Workload,
  withClaim,
  workloadOriginal,
} from '../../kube/index.js';
import { decodeAgentContainerEnv } from '../../tunnel/agent-contract.js';
import { DevboxError } from '../../util/errors.js';
import type { Progress } from '../../util/progress.js';
import { readAgentToken } from '../agent-objects.js';
import { readAgentBundle } from '../bundles.js';
import { checkNetworkPolicies } from '../network-policies.js';
import { recordedRoute } from '../route-flags.js';
import { portsFiltersMiss } from './filter-ports.js';
import type { ClusterPlan, UpContext, UpFlags, UpOptions, UpPlan, Validated } from './types.js';
import { currentUser } from './validate.js';

export async function planUp(ctx: UpContext, flags: UpFlags, v: Validated): Promise<UpPlan> {
  const { docker, options } = ctx;
  // Joined: the agent is in place (other sessions', or left by `down --keep-agent` or a crash).
  const join = workloadOriginal(v.workload) !== undefined;
  // Every `up` is a session of its own, even over an agent left in place.
  const session: SessionRecord = {
    ...currentUser(),
    startedAt: new Date().toISOString(),
    id: newSessionId(),
    pid: process.pid,
    name: flags.name,
    route: recordedRoute(flags.route),
    kind: 'local',
  };
  const [sidecar, agent] = await Promise.all([readSidecarBundle(), readAgentBundle()]);
  const cluster = join ? await joinPlan(ctx, v) : freshPlan(options, v, session, agent);
  if (cluster.mode === 'fresh') {
    const { intercept } = cluster;
    await ctx.step('Checking NetworkPolicies', () =>
      checkNetworkPolicies(ctx.client, v.workload, v.app.name, intercept),
    );
  }
  const service =
    flags.devcontainer || options.sidecarOnly
      ? ''
      : await prepareServiceImage(docker, options, v.app, ctx.progress);
  const runtime = await ctx.step('Preparing the sidecar image', () => ensureRuntimeImage(docker));
  const devcontainer = flags.devcontainer;
  const workspace =
    devcontainer &&
    (await ctx.step('Checking how the Docker engine sees the workspace', () =>
      placeWorkspace(docker, devcontainer.loaded, runtime.tag),
    ));
  const warnings = [
    ...v.mounts.notes,
    ...(cluster.mode === 'fresh' ? cluster.intercept.warnings : []),
    ...portsFiltersMiss(flags.route, v.services, v.app),
  ];
  return {
    target: v,
    flags,
    session,
    cluster,
    images: { service, runtime },
    workspace: workspace || undefined,
    bundles: { sidecar, agent },
    warnings,
  };
}

/** The intercept of `workload` (as read now) for this session, running `agentBundle`. */
export function interceptFor(
  options: UpOptions,
  v: Validated,
  session: SessionHolder,
  workload: Workload,
  agentBundle: string,
): InterceptPlan {
  const names = agentObjectNames(workload.kind, v.name);
  return planIntercept({
    workload,
    services: v.services,
    container: v.app.name,
    holder: session,
    agent: {
      image: options.agentImage,
      bundleConfigMap: names.configMap,
      bundleSha256: createHash('sha256').update(agentBundle).digest('hex'),
      tokenSecret: names.secret,
    },
  });
}

function freshPlan(
  options: UpOptions,
  v: Validated,
  session: SessionHolder,
  agentBundle: string,
): ClusterPlan {
  // Planned on the workload as it will read once claimed for this session.
  const intercept = interceptFor(
    options,
    v,
    session,
    withClaim(v.workload, session, v.replaces),
    agentBundle,
  );
  if (intercept.rollout === 'paused' || intercept.rollout === 'no-replicas') {
    const paused = intercept.rollout === 'paused';
    throw new DevboxError('BAD_INPUT', `${v.label} ${paused ? 'is paused' : 'has no replicas'}`, {
      hint: paused
        ? `resume it: kubectl rollout resume ${v.label} -n ${v.namespace}`
        : `scale it up: kubectl scale ${v.label} --replicas=1 -n ${v.namespace}`,
    });
  }
  return { mode: 'fresh', intercept, agentObjects: agentObjectNames(v.workload.kind, v.name) };
}

/** The agent already in the workload, with its token; CONFLICT when either is missing. */
async function joinPlan(ctx: UpContext, v: Validated): Promise<ClusterPlan> {
  const retry = v.sessions.length
    ? `its sessions (${v.sessions.map((s) => s.name).join(', ')}) are not affected; \`devbox clean -n ${v.namespace}\` repairs it once they have ended`
    : `run \`devbox down ${v.name} -n ${v.namespace}\` and try again`;
  const agent = podTemplate(v.workload).spec?.containers.find((c) => c.name === AGENT_CONTAINER);
  const token = await readAgentToken(ctx.client, v.workload);
  if (!agent || !token) {
    throw new DevboxError('CONFLICT', `${v.label} carries devbox's agent but it is incomplete`, {
      hint: retry,
    });
  }
  return { mode: 'join', agent: decodeAgentContainerEnv(agent.env, retry), token };
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
