/**
 * The cluster half of `up`'s last stage. Each change is registered for undo before it is made, so
 * a failure or Ctrl-C unwinds it, and each leaves in the cluster what `down`/`clean` restore from
 * should the CLI be killed.
 */
import type { V1Service } from '@kubernetes/client-node';
import {
  AGENT_CONTAINER,
  assertNotIntercepted,
  getWorkload,
  type InterceptPlan,
  type Workload,
  writeServices,
  writeWorkload,
} from '../../kube/index.js';
import { servicePortTargets } from '../../kube/workload.js';
import type { AgentContainerEnv } from '../../tunnel/agent-contract.js';
import { isDevboxError } from '../../util/errors.js';
import { writeAgentObjects } from '../agent-objects.js';
import { hasAgent, rollOnDelete } from '../ondelete-roll.js';
import { waitForRollout } from '../rollout.js';
import { claimWorkload } from './claim.js';
import { interceptFor } from './plan.js';
import type { ClusterSession, InterceptedPort, UpContext, UpPlan } from './types.js';
import type { UndoStack } from './undo.js';

/** Puts the cluster side of the session in place, or joins the agent already there. */
export async function applyCluster(ctx: UpContext, plan: UpPlan, undo: UndoStack): Promise<ClusterSession> {
  const { target: v, cluster } = plan;
  const claimed = await claimWorkload(ctx, plan, undo);
  if (cluster.mode === 'join') {
    const others = v.sessions.filter((s) => !v.replaces.includes(s.id));
    ctx.progress.note(
      others.length
        ? `joining the agent already in ${v.label}, beside ${others.map((s) => `${s.name} (${s.user}@${s.host})`).join(', ')}`
        : `reusing the agent already in ${v.label}`,
    );
    return {
      token: cluster.token,
      tunnelPort: cluster.agent.tunnelPort,
      intercepted: joinedPorts(v, cluster.agent),
    };
  }
  const { client } = ctx;
  // The claim's undo restores the workload and removes these objects while no other session joined.
  const objects = await writeAgentObjects(client, v.workload, plan.bundles.agent, plan.session.id);
  const intercept = await ctx.step(`Adding the agent to ${v.label}`, () =>
    writeIntercept(ctx, plan, interceptFor(ctx.options, v, plan.session, claimed, plan.bundles.agent)),
  );
  await pointAndRollOut(ctx, v.workload, intercept);
  return {
    token: objects.token,
    tunnelPort: intercept.tunnelPort,
    intercepted: intercept.ports.map((p) => ({
      service: p.service,
      port: p.port,
      protocol: p.protocol,
      appPort: p.appPort,
    })),
  };
}

/** The Service ports that reach the agent's intercepts, as a joining session takes them over. */
function joinedPorts(v: UpPlan['target'], agent: AgentContainerEnv): InterceptedPort[] {
  return servicePortTargets(v.workload, v.services).flatMap((t): InterceptedPort[] => {
    const intercept = agent.intercepts.find((i) => i.listenPort === t.containerPort);
    if (t.container !== AGENT_CONTAINER || !intercept) return [];
    return [
      {
        service: t.service,
        port: t.servicePort.port,
        protocol: t.servicePort.protocol ?? 'TCP',
        appPort: intercept.appPort,
      },
    ];
  });
}

/**
 * Writes the workload with the agent. Controllers update the object (its status) all the time:
 * on a conflict it is read again and the intercept planned anew. Returns the plan written.
 */
async function writeIntercept(ctx: UpContext, plan: UpPlan, first: InterceptPlan): Promise<InterceptPlan> {
  const { target: v } = plan;
  let intercept = first;
  for (let attempt = 1; ; attempt++) {
    try {
      await writeWorkload(ctx.client, intercept.workload);
      return intercept;
    } catch (err) {
      if (!isDevboxError(err, 'CONFLICT') || attempt === 5) throw err;
      const fresh = await getWorkload(ctx.client, v.workload.kind, v.namespace, v.name);
      if (!fresh) throw err;
      assertNotIntercepted(fresh, plan.session);
      intercept = interceptFor(ctx.options, v, plan.session, fresh, plan.bundles.agent);
    }
  }
}

/**
 * Services whose new target resolves as before in the old pods go first: new pods then never
 * serve a client directly. The others would lose the old pods' endpoints, so they wait for the
 * rollout.
 */
async function pointAndRollOut(ctx: UpContext, workload: Workload, intercept: InterceptPlan): Promise<void> {
  const label = `${workload.kind.toLowerCase()}/${workload.metadata!.name!}`;
  const first = intercept.services.filter((s) => intercept.servicesFirst.includes(s.metadata?.name ?? ''));
  const afterRollout = intercept.services.filter((s) => !first.includes(s));
  const pointServices = (list: V1Service[]) =>
    ctx.step(`Pointing ${list.map((s) => `service/${s.metadata?.name}`).join(', ')} at the agent`, () =>
      writeServices(ctx.client, list),
    );
  if (first.length) await pointServices(first);
  if (intercept.rollout === 'delete-pods')
    await ctx.step(`Replacing the pods of ${label} one at a time`, () =>
      rollOnDelete(ctx.client, workload, (p) => !hasAgent(p), {
        timeoutMs: ctx.options.rolloutTimeoutMs,
        signal: ctx.signal,
      }),
    );
  await ctx.step(`Waiting for ${label} to roll out`, () =>
    waitForRollout(ctx.client, workload, { timeoutMs: ctx.options.rolloutTimeoutMs, signal: ctx.signal }),
  );
  if (afterRollout.length) await pointServices(afterRollout);
}
