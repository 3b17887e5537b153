/**
 * The claim: `up`'s first change to the cluster, and the only one made before it knows it may
 * act. The session adds itself to the workload's session record, written with the
 * resourceVersion the workload was read with; of several `up`s that read the same version
 * exactly one write lands. The others get 409, read the record again and are admitted anew
 * against it (a second filtered session still joins; a second global one stops naming the
 * holder), having changed nothing. Every undo acts only on this session's own entry, and
 * restores the workload only when no other session remains on it.
 */
import {
  ANNOTATION_ORIGINAL,
  getWorkload,
  sessionsOf,
  type Workload,
  withClaim,
  writeWorkload,
} from '../../kube/index.js';
import { DevboxError, isDevboxError } from '../../util/errors.js';
import { admitSession } from '../admission.js';
import { leaveWorkload } from '../leave.js';
import type { UpContext, UpPlan } from './types.js';
import type { UndoStack } from './undo.js';
import { assertSettled, currentUser, isLeftover } from './validate.js';

const hasAgentRecord = (w: Workload) => w.metadata?.annotations?.[ANNOTATION_ORIGINAL] !== undefined;

/** Claims the workload for the plan's session (undo registered first); returns it as written. */
export async function claimWorkload(ctx: UpContext, plan: UpPlan, undo: UndoStack): Promise<Workload> {
  const { target: v, session } = plan;
  // A fresh session restores what it wrote; one that joined leaves the agent to the others.
  const title =
    plan.cluster.mode === 'join'
      ? `taking session ${session.id} off ${v.label}`
      : `restoring ${v.label} and its Services (only this session's entry if others joined it)`;
  undo.push(title, () =>
    leaveWorkload(ctx.client, v.namespace, v.workload.kind, v.name, [session.id], {
      keepAgent: plan.cluster.mode === 'join',
      onlyIfRecorded: true,
      progress: ctx.progress,
    }),
  );
  return ctx.step(`Claiming ${v.label} for session ${session.id} (${session.name})`, async () => {
    let current = v.workload;
    let replaces = v.replaces;
    for (let attempt = 1; ; attempt++) {
      try {
        return await writeWorkload(ctx.client, withClaim(current, session, replaces));
      } catch (err) {
        if (!isDevboxError(err, 'CONFLICT') || attempt === 5) throw err;
        const fresh = await getWorkload(ctx.client, v.workload.kind, v.namespace, v.name);
        if (!fresh) throw err;
        // Someone acted on it since it was read: admitted again against what they recorded.
        const candidate = { name: session.name, ...currentUser(), route: session.route };
        const sessions = sessionsOf(fresh);
        replaces = admitSession(v, sessions, candidate, isLeftover).replaces;
        if (hasAgentRecord(fresh) !== (plan.cluster.mode === 'join'))
          throw new DevboxError('CONFLICT', `${v.label} changed while this session claimed it`, {
            hint: 'someone started or ended a session on it at the same time; try again',
          });
        assertSettled(v.label, fresh, sessions, [...replaces, session.id]);
        current = fresh;
      }
    }
  });
}
