import { apiErrors, HANDOFF_TEXT_MAX_BYTES, type UpsertSessionBody } from '@wizard-stream/contracts';
import type { DatabaseSchema } from '@wizard-stream/db';
import { inSpan } from '@wizard-stream/telemetry';
import type { Kysely } from 'kysely';
import type { ApiKeyPrincipal } from '../auth/principal.js';
import type { WriteApiMetrics } from '../metrics.js';
import { projectedRecord } from './projected.js';
import type { SessionPublisher } from './publisher.js';
import { keepsStoredEventPlan, keptFieldBytes, type StoredSession, storedSession } from './queries.js';
import type { SessionSerializer } from './serializer.js';
import type { UpsertBatcher } from './upsert-batcher.js';

export interface SessionCommitterOptions {
  db: Kysely<DatabaseSchema>;
  upserts: UpsertBatcher;
  publisher: SessionPublisher;
  serialize: SessionSerializer;
  metrics: WriteApiMetrics;
  /** The largest DTO a publish may carry right now (the connected server's max_payload less headers). */
  payloadLimit: () => number;
  /**
   * Test seam: runs after a session commit and before its publish (the crash-after-commit test);
   * returning 'skip-publish' leaves the version to the relay, as a publish lost after the commit would.
   */
  afterCommit?: ((session: StoredSession) => unknown) | undefined;
}

export interface CommitResult {
  /** True for a session's first version (answered 201), false for an update (200). */
  created: boolean;
  /** The committed version's DTO bytes: the response body and the published payload are these. */
  payload: string;
}

/** Quoted JSON of the largest handoff_text a push may keep (every byte a 6-byte escape). */
const MAX_KEPT_HANDOFF_JSON_BYTES = 6 * HANDOFF_TEXT_MAX_BYTES + 2;

/**
 * Publish after commit, in one place: check that the push, serialized as it will be served, fits what
 * the bus carries; commit it (group-committed with concurrent ones); build the stored session,
 * serialize it once, then publish. A publish that fails or never happens (a crash after the commit)
 * leaves the version behind the publish marker, where the relay finds it (docs/delivery.md#guarantee).
 */
export class SessionCommitter {
  constructor(private readonly options: SessionCommitterOptions) {}

  async commit(
    push: { teamId: number; body: UpsertSessionBody },
    principal: ApiKeyPrincipal,
  ): Promise<CommitResult> {
    const { upserts, publisher, serialize, metrics, afterCommit } = this.options;
    await this.checkSize(push, principal);
    // The upsert is one statement (shared with concurrent pushes), so its span is the transaction.
    const row = await inSpan(
      'write-api',
      'wizard.upsert_transaction',
      () => upserts.upsert({ teamId: push.teamId, userId: principal.userId, body: push.body }),
      { 'db.system': 'postgresql', 'wizard.session_id': push.body.session_id },
    );
    if (!row) {
      metrics.upserts.inc({ result: 'forbidden' });
      throw apiErrors.permissionDenied('This session was created by another user.');
    }
    const created = row.version === 1;
    metrics.upserts.inc({ result: created ? 'created' : 'updated' });
    // created_by never changes and the update only applies to the creator's own session.
    const session = storedSession(row, {
      id: principal.userId,
      first_name: principal.firstName,
      email: principal.email,
    });
    const payload = serialize(session.record);
    if (afterCommit?.(session) !== 'skip-publish') publisher.publish(session, payload);
    return { created, payload };
  }

  /**
   * Refuses (413) a push whose DTO would be more than a publish can carry, before anything is written:
   * a stored session must always be publishable. The DTO is serialized from the push with the widest
   * server-set values; what the push keeps from the stored row (event_plan, handoff_text) is counted by
   * its stored size, read only when it could matter.
   */
  private async checkSize(
    push: { teamId: number; body: UpsertSessionBody },
    principal: ApiKeyPrincipal,
  ): Promise<void> {
    const { db, serialize, metrics, payloadLimit } = this.options;
    const limit = payloadLimit();
    let bytes = Buffer.byteLength(serialize(projectedRecord(push.teamId, push.body, principal)), 'utf8');
    const keepsEventPlan = keepsStoredEventPlan(push.body);
    const keepsHandoff = !push.body.handoff_text;
    if (bytes <= limit && (keepsEventPlan || (keepsHandoff && bytes + MAX_KEPT_HANDOFF_JSON_BYTES > limit))) {
      const kept = await keptFieldBytes(db, push.teamId, push.body.session_id);
      // The projection serialized each kept field as null (4 bytes).
      if (kept && keepsEventPlan) bytes += kept.eventPlan - 4;
      if (kept && keepsHandoff) bytes += kept.handoffText - 4;
    }
    if (bytes > limit) {
      metrics.upserts.inc({ result: 'too_large' });
      throw apiErrors.sessionTooLarge(bytes, limit);
    }
  }
}
