import { apiErrors } from '@wizard-stream/contracts';
import type { DatabaseSchema, WizardSessionRow } from '@wizard-stream/db';
import type { Kysely } from 'kysely';
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../db-errors.js';
import { keepsStoredEventPlan, type SessionPush, upsertSessions } from './queries.js';

interface QueuedPush extends SessionPush {
  key: string;
  keepStoredEventPlan: boolean;
  resolve(row: WizardSessionRow | undefined): void;
  reject(error: unknown): void;
}

export interface UpsertBatcherOptions {
  /** Statements in flight at once; pushes that arrive meanwhile wait and go together in the next one. */
  maxInFlight: number;
  /** Sessions per statement at most. */
  maxBatch: number;
  /**
   * Pushes waiting for a statement at most (UPSERT_QUEUE_LIMIT). Beyond it a push is refused at once
   * with 503 + Retry-After: when the database slows down or hangs, the queue sheds load instead of
   * holding every request (and its body) until memory runs out.
   */
  maxQueued: number;
}

const sessionKey = (teamId: number, sessionId: string) => `${teamId}\u0000${sessionId}`;

/**
 * Group commit for pushes. Under load most of an upsert's cost is per statement, not per row: the round
 * trip, the commit's WAL flush, and the query's build. Pushes that arrive while `maxInFlight` statements
 * are running are written together by the next one, a multi-row upsert that commits them all at once.
 * An idle server still writes each push at once, in a statement of its own.
 *
 * A statement holds each session at most once (PostgreSQL refuses to update a row twice in one
 * statement): a second push of a session waits for the next statement, so its version follows the first.
 * If a statement fails for any reason other than an unreachable database, its pushes are retried one by
 * one, so a push that the database refuses fails alone and never takes others down with it. If the
 * database is unreachable (or did not answer within the statement timeout), the statement's pushes and
 * every push waiting fail at once (503); beyond `maxQueued` waiting pushes, new ones fail at once too.
 */
export class UpsertBatcher {
  private queue: QueuedPush[] = [];
  private inFlight = 0;
  /** Sessions with a statement in flight: their next push waits for it, so versions follow arrival. */
  private readonly inFlightKeys = new Set<string>();
  private scheduled = false;

  constructor(
    private readonly db: Kysely<DatabaseSchema>,
    private readonly options: UpsertBatcherOptions,
  ) {}

  /** Commits one push; resolves with the committed row, or undefined when the session is another user's. */
  upsert(push: SessionPush): Promise<WizardSessionRow | undefined> {
    if (this.queue.length >= this.options.maxQueued) {
      return Promise.reject(
        apiErrors.unavailable(
          `${this.queue.length} pushes are already waiting for the database; retry shortly.`,
          DATABASE_RETRY_AFTER_SECONDS,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      this.queue.push({
        ...push,
        key: sessionKey(push.teamId, push.body.session_id),
        keepStoredEventPlan: keepsStoredEventPlan(push.body),
        resolve,
        reject,
      });
      if (!this.scheduled && this.inFlight < this.options.maxInFlight) {
        this.scheduled = true;
        // Pushes parsed in the same turn of the event loop share the statement.
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  /** Pushes waiting for a statement. */
  get queued(): number {
    return this.queue.length;
  }

  private flush(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.takeBatch();
      if (batch.length === 0) return;
      for (const push of batch) this.inFlightKeys.add(push.key);
      this.inFlight++;
      void this.write(batch).finally(() => {
        for (const push of batch) this.inFlightKeys.delete(push.key);
        this.inFlight--;
        this.flush();
      });
    }
  }

  /**
   * The oldest push whose session has no statement in flight and, in arrival order, every later one that
   * can share its statement. A push left behind holds back every later push of its session.
   */
  private takeBatch(): QueuedPush[] {
    const batch: QueuedPush[] = [];
    /** Sessions already taken or left behind in this pass. */
    const seen = new Set<string>();
    const rest: QueuedPush[] = [];
    for (const push of this.queue) {
      if (
        batch.length < this.options.maxBatch &&
        !this.inFlightKeys.has(push.key) &&
        !seen.has(push.key) &&
        (batch.length === 0 || push.keepStoredEventPlan === (batch[0] as QueuedPush).keepStoredEventPlan)
      ) {
        batch.push(push);
      } else {
        rest.push(push);
      }
      seen.add(push.key);
    }
    this.queue = rest;
    // One lock order for every statement, so that two in flight never deadlock on each other's rows.
    return batch.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  private async write(batch: QueuedPush[]): Promise<void> {
    let rows: WizardSessionRow[];
    try {
      rows = await upsertSessions(this.db, batch);
    } catch (error) {
      if (isDatabaseUnavailable(error)) {
        // The pushes waiting behind this statement would wait out a timeout of their own for the same
        // answer: they fail now, so a database that hangs costs each push one timeout at most.
        const waiting = this.queue;
        this.queue = [];
        for (const push of [...batch, ...waiting]) push.reject(error);
        return;
      }
      if (batch.length === 1) {
        batch[0]?.reject(error);
        return;
      }
      await Promise.all(batch.map((push) => this.write([push])));
      return;
    }
    const byKey = new Map(rows.map((row) => [sessionKey(row.team_id, row.session_id), row]));
    for (const push of batch) push.resolve(byKey.get(push.key));
  }
}
