/**
 * `devbox up`: the workload's pod, as a local container. A pipeline of three stages, each a
 * function with a typed result, shared by a fresh session and one resumed over an agent left in
 * place:
 *
 * 1. validate (`up/validate.ts`): the flags, then permissions, the workload and who holds it, and
 *    the sessions already on this Docker engine. Nothing changes.
 * 2. plan (`up/plan.ts`): the session's identity, its images, and what changes in the cluster.
 *    Local images may be built; the cluster is not touched.
 * 3. apply: the cluster side (`up/apply-cluster.ts`), then the local containers
 *    (`up/apply-local.ts`). Every change is registered for undo before it is made, so a failure or
 *    Ctrl-C at any step leaves nothing behind (and a killed CLI leaves records `devbox down`/`clean`
 *    restore from).
 */
import { connectDocker } from '../docker/connect.js';
import { connectCluster } from '../kube/connect.js';
import { describeRoute, type SessionRoute } from '../tunnel/route.js';
import { DevboxError, errorText } from '../util/errors.js';
import { createSessionLease, deleteSessionLease, keepRenewing } from './lease.js';
import { curlLine, recordedRoute } from './route-flags.js';
import { mintSessionSidecarToken } from './sidecar-token.js';
import { checkAppRunning } from './up/app-running.js';
import { applyCluster } from './up/apply-cluster.js';
import { applyLocal } from './up/apply-local.js';
import { planUp } from './up/plan.js';
import type { InterceptedPort, UpContext, UpOptions, UpPlan, UpResult } from './up/types.js';
import { UndoStack } from './up/undo.js';
import { validateFlags, validateTarget } from './up/validate.js';

export type { UpOptions, UpResult } from './up/types.js';

export async function up(options: UpOptions): Promise<UpResult> {
  const { progress, signal } = options;
  const flags = await validateFlags(options);
  const client = await connectCluster(options.target, progress);
  const docker = await connectDocker(progress);
  const ctx: UpContext = {
    options,
    client,
    docker,
    progress,
    signal,
    step: (title, run) => {
      // Ctrl-C between steps stops before the next one; the undo does the rest.
      signal.throwIfAborted();
      return progress.step(title, run);
    },
  };
  const undo = new UndoStack();
  try {
    const validated = await validateTarget(ctx, flags);
    if ('reused' in validated) return validated.reused;
    const plan = await planUp(ctx, flags, validated.validated);
    return await apply(ctx, plan, undo);
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

async function apply(ctx: UpContext, plan: UpPlan, undo: UndoStack): Promise<UpResult> {
  // The Lease comes first and is renewed while up runs (then by the sidecar): from the first
  // change on, a \`clean\` anywhere sees a live session and leaves it alone.
  const { namespace, label } = plan.target;
  undo.push("removing the session's lease", () => deleteSessionLease(ctx.client, namespace, plan.session.id));
  await ctx.step('Taking the session lease', () =>
    createSessionLease(ctx.client, namespace, plan.session, label),
  );
  const stopRenewing = keepRenewing(ctx.client, namespace, plan.session.id, (text) =>
    ctx.progress.note(`session lease not renewed: ${text}`),
  );
  try {
    return await applyAll(ctx, plan, undo);
  } finally {
    stopRenewing();
  }
}

async function applyAll(ctx: UpContext, plan: UpPlan, undo: UndoStack): Promise<UpResult> {
  const cluster = await applyCluster(ctx, plan, undo);
  // Owned by the session's Lease: its undo (deleting the Lease) revokes this token too.
  const sidecarToken = await ctx.step("Minting the sidecar's token for this session", () =>
    mintSessionSidecarToken(ctx.client, plan.target.namespace, plan.session.id),
  );
  const started = await applyLocal(ctx, plan, { ...cluster, sidecarToken }, undo);
  // Checks of the running session (e.g. that the local app still runs) belong here: a failure
  // unwinds the session like any other step.
  if (started.containers.serviceId) {
    const warning = await ctx.step('Checking that the local app runs', () =>
      checkAppRunning(ctx.docker, started.containers.serviceId, { signal: ctx.signal }),
    );
    if (warning) plan.warnings.push(warning);
  }
  const { target: v } = plan;
  return {
    session: plan.session.id,
    name: plan.session.name,
    ...routeSummary(plan.flags.route, cluster.intercepted, v.namespace),
    container: v.app.name,
    workload: v.label,
    namespace: v.namespace,
    context: ctx.client.cluster.context,
    ...started,
    intercepted: cluster.intercepted,
    resumed: plan.cluster.mode === 'join',
    warnings: plan.warnings,
  };
}

/** What the user needs to reach a filtered session: the filter in words, its key, a request to paste. */
function routeSummary(
  route: SessionRoute,
  intercepted: readonly InterceptedPort[],
  namespace: string,
): Pick<UpResult, 'route' | 'filter' | 'personalKey' | 'curl'> {
  const first = intercepted.find((p) => p.service && p.protocol === 'TCP');
  const url = first ? `http://${first.service}.${namespace}:${first.port}` : undefined;
  return {
    route: recordedRoute(route),
    filter: describeRoute(route),
    ...(route.personalKey !== undefined ? { personalKey: route.personalKey } : {}),
    ...(route.mode !== 'global' && url ? { curl: curlLine(route, url) } : {}),
  };
}
