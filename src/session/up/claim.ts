/**
 * The claim: `up`'s first change to the cluster, and the only one made before it knows the
 * workload is its own. The session annotation is written with the resourceVersion the workload
 * was read with; of several `up`s that read the same version exactly one write lands, and the
 * others get 409, read the winner's claim, and stop naming it — having changed nothing. Every
 * later undo step acts only while the workload is still held by this session.
 */
import {
  ANNOTATION_ORIGINAL,
  ANNOTATION_SESSION,
  assertNotIntercepted,
  getWorkload,
  sessionOf,
  updateWithRetry,
  type Workload,
  withClaim,
  writeWorkload,
} from '../../kube/index.js';
import { DevboxError, isDevboxError } from '../../util/errors.js';
import type { UpContext, UpPlan } from './types.js';
import type { UndoStack } from './undo.js';

const annotation = (w: Workload, key: string) => w.metadata?.annotations?.[key];

/** Claims the workload for the plan's session (undo registered first); returns it as written. */
export async function claimWorkload(ctx: UpContext, plan: UpPlan, undo: UndoStack): Promise<Workload> {
  const { target: v, session } = plan;
  undo.push(`releasing ${v.label}`, () => releaseClaim(ctx, plan));
  return ctx.step(`Claiming ${v.label} for session ${session.id}`, async () => {
    let current = v.workload;
    for (let attempt = 1; ; attempt++) {
      try {
        return await writeWorkload(ctx.client, withClaim(current, session));
      } catch (err) {
        if (!isDevboxError(err, 'CONFLICT') || attempt === 5) throw err;
        const fresh = await getWorkload(ctx.client, v.workload.kind, v.namespace, v.name);
        if (!fresh) throw err;
        // Another session acted on it since it was read: theirs now, whoever they are.
        for (const key of [ANNOTATION_SESSION, ANNOTATION_ORIGINAL]) {
          if (annotation(fresh, key) === annotation(v.workload, key)) continue;
          assertNotIntercepted(fresh);
          throw new DevboxError('CONFLICT', `${v.label} changed while this session claimed it`, {
            hint: 'someone started or ended a session on it at the same time; try again',
          });
        }
        current = fresh; // only its status moved
      }
    }
  });
}

/** Puts back the session annotation as it was before the claim, while it is still this session's. */
async function releaseClaim(ctx: UpContext, plan: UpPlan): Promise<void> {
  const { target: v, session } = plan;
  const before = annotation(v.workload, ANNOTATION_SESSION);
  await updateWithRetry(
    () => getWorkload(ctx.client, v.workload.kind, v.namespace, v.name),
    (w) => {
      if (sessionOf(w)?.id !== session.id) return undefined;
      // An agent written by this session is undone by its own step (or left for `down`/`clean`).
      if (plan.cluster.mode === 'fresh' && annotation(w, ANNOTATION_ORIGINAL) !== undefined) return undefined;
      const annotations = { ...w.metadata?.annotations };
      if (before === undefined) delete annotations[ANNOTATION_SESSION];
      else annotations[ANNOTATION_SESSION] = before;
      return { ...w, metadata: { ...w.metadata, annotations } };
    },
    (w) => writeWorkload(ctx.client, w),
  );
}

/** Runs `undo` only while the workload is held by the plan's session; otherwise leaves it alone. */
export async function whileHeld(
  ctx: UpContext,
  plan: UpPlan,
  undo: () => Promise<unknown>,
): Promise<unknown> {
  const { target: v, session } = plan;
  const current = await getWorkload(ctx.client, v.workload.kind, v.namespace, v.name);
  const holder = current && sessionOf(current);
  if (holder?.id !== session.id) {
    ctx.progress.note(`${v.label} is no longer held by session ${session.id}: left as it is`);
    return undefined;
  }
  return undo();
}
