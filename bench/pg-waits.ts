import type { DatabaseSchema } from '@wizard-stream/db';
import { type Kysely, sql } from 'kysely';

/**
 * Samples pg_stat_activity of the bench database while write-api is under load: which statements are
 * running and what they wait on (a row lock held by another transaction shows as Lock:transactionid or
 * Lock:tuple, the WAL flush of a commit as LWLock:WALWrite or IO:WALSync). With pg_stat_database's
 * deadlock counter, this tells whether one kind of statement holds the others up.
 */

const KINDS: [RegExp, string][] = [
  [/^insert into "wizard_sessions"/i, 'upsert'],
  [/^with "async_commit" as .* update "wizard_sessions" set "published_version"/i, 'publish marker'],
  [/^select count\(\*\)/i, 'relay backlog count'],
  [/^with "transitioned"/i, 'staleness sweep'],
  [/"api_keys"/i, 'API key lookup/update'],
  [/^(commit|begin|set local)/i, 'transaction control'],
];

const kindOf = (query: string) => KINDS.find(([pattern]) => pattern.test(query.trim()))?.[1] ?? 'other';

export interface PgWaits {
  samples: number;
  /** Per statement kind: samples seen running, and by wait event ("running" when not waiting). */
  byKind: Record<string, { active: number; waits: Record<string, number> }>;
  deadlocks: number;
}

export class PgWaitSampler {
  private timer: NodeJS.Timeout | undefined;
  private samples = 0;
  private readonly byKind: PgWaits['byKind'] = {};
  private deadlocksBefore = 0;
  private sampling: Promise<void> | undefined;

  constructor(private readonly db: Kysely<DatabaseSchema>) {}

  private async deadlocks(): Promise<number> {
    const { rows } = await sql<{ deadlocks: string }>`
      select deadlocks from pg_stat_database where datname = current_database()`.execute(this.db);
    return Number(rows[0]?.deadlocks ?? 0);
  }

  async start(intervalMs = 10): Promise<void> {
    this.deadlocksBefore = await this.deadlocks();
    const sample = async () => {
      const { rows } = await sql<{ query: string; wait: string | null }>`
        select query, wait_event_type || ':' || wait_event as wait from pg_stat_activity
        where datname = current_database() and state = 'active' and pid <> pg_backend_pid()`.execute(this.db);
      this.samples++;
      for (const row of rows) {
        const kind = kindOf(row.query);
        const entry = this.byKind[kind] ?? { active: 0, waits: {} };
        entry.active++;
        const wait = row.wait ?? 'running';
        entry.waits[wait] = (entry.waits[wait] ?? 0) + 1;
        this.byKind[kind] = entry;
      }
    };
    const loop = () => {
      this.sampling = sample()
        .catch(() => undefined)
        .finally(() => {
          if (this.timer !== undefined) this.timer = setTimeout(loop, intervalMs);
        });
    };
    this.timer = setTimeout(loop, intervalMs);
  }

  async stop(): Promise<PgWaits> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.sampling;
    return {
      samples: this.samples,
      byKind: this.byKind,
      deadlocks: (await this.deadlocks()) - this.deadlocksBefore,
    };
  }
}
