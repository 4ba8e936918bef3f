import { apiErrors, type UpsertSessionBody } from '@wizard-stream/contracts';
import { inSpan } from '@wizard-stream/telemetry';
import type { ApiKeyPrincipal } from '../auth/principal.js';
import type { WriteApiMetrics } from '../metrics.js';
import type { SessionPublisher } from './publisher.js';
import { storedSession } from './queries.js';
import type { SessionSerializer } from './serializer.js';
import type { UpsertBatcher } from './upsert-batcher.js';

export interface SessionCommitterOptions {
  upserts: UpsertBatcher;
  publisher: SessionPublisher;
  serialize: SessionSerializer;
  metrics: WriteApiMetrics;
  /** Test seam: runs after a session commit and before its publish (the crash-after-commit test). */
  afterCommit?: (() => void) | undefined;
}

export interface CommitResult {
  /** True for a session's first version (answered 201), false for an update (200). */
  created: boolean;
  /** The committed version's DTO bytes: the response body and the published payload are these. */
  payload: string;
}

/**
 * Publish after commit, in one place: commit the push (group-committed with concurrent ones), build the
 * stored session, serialize it once, then publish. A publish that fails or never happens (a crash after
 * the commit) leaves the version behind the publish marker, where the relay finds it
 * (docs/delivery.md#guarantee).
 */
export class SessionCommitter {
  constructor(private readonly options: SessionCommitterOptions) {}

  async commit(
    push: { teamId: number; body: UpsertSessionBody },
    principal: ApiKeyPrincipal,
  ): Promise<CommitResult> {
    const { upserts, publisher, serialize, metrics, afterCommit } = this.options;
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
    afterCommit?.();
    publisher.publish(session, payload);
    return { created, payload };
  }
}
