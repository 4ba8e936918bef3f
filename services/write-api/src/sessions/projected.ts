import type { SessionRecord, UpsertSessionBody } from '@wizard-stream/contracts';
import type { ApiKeyPrincipal } from '../auth/principal.js';

/**
 * The session a push will become, before it is written: the pushed fields as the row will hold them,
 * and for what the database sets, the widest value it can take (the largest version, a fresh session),
 * so its serialization is at least as long as the committed version's. Fields the push leaves to the
 * stored row (see keepsStoredEventPlan, handoff_text) are null here.
 */
export function projectedRecord(
  teamId: number,
  body: UpsertSessionBody,
  principal: ApiKeyPrincipal,
): SessionRecord {
  const now = new Date();
  return {
    teamId,
    sessionId: body.session_id,
    workflowId: body.workflow_id,
    skillId: body.skill_id,
    startedAt: new Date(body.started_at),
    runPhase: body.run_phase,
    tasks: body.tasks,
    eventPlan: body.event_plan ?? null,
    error: body.error ?? null,
    pendingInput: body.pending_input ?? null,
    handoffText: body.handoff_text || null,
    createdBy: { id: principal.userId, first_name: principal.firstName, email: principal.email },
    createdAt: now,
    updatedAt: now,
    version: Number.MAX_SAFE_INTEGER,
  };
}
