import { type UpsertSessionBody, upsertSessionBodySchema } from '@wizard-stream/contracts';
import type { DatabaseSchema, SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, type TestDatabase, until } from '@wizard-stream/testkit';
import { type Kysely, type KyselyPlugin, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UpsertBatcher } from '../src/sessions/upsert-batcher.js';
import { seedMember, sessionBody } from './support/write-api.js';

/** Counts the statements that reach the database: a real Kysely plugin on the real connection. */
class StatementCounter implements KyselyPlugin {
  inserts = 0;
  transformQuery: KyselyPlugin['transformQuery'] = ({ node }) => {
    if (node.kind === 'InsertQueryNode') this.inserts++;
    return node;
  };
  transformResult: KyselyPlugin['transformResult'] = async ({ result }) => result;
}

function body(sessionId: string, overrides: Record<string, unknown> = {}): UpsertSessionBody {
  return upsertSessionBodySchema.parse(sessionBody(sessionId, overrides));
}

describe.each(DIALECTS)('upsert batching (%s)', (dialect) => {
  let database: TestDatabase;
  let owner: SeededMember;
  let stranger: SeededMember;

  beforeAll(async () => {
    database = await createTestDatabase(dialect);
    owner = await seedMember(database);
    stranger = await seedMember(database);
  }, 60_000);

  afterAll(async () => {
    await database?.dispose();
  });

  /** A batcher over the test database whose statements are counted. */
  function batcher(maxInFlight: number): { upserts: UpsertBatcher; counter: StatementCounter } {
    const counter = new StatementCounter();
    const db: Kysely<DatabaseSchema> = database.db.withPlugin(counter);
    return { upserts: new UpsertBatcher(db, { maxInFlight, maxBatch: 64, maxQueued: 10_000 }), counter };
  }

  it('commits pushes that arrive together in fewer statements, each with its own row', async () => {
    const { upserts, counter } = batcher(1);
    const ids = Array.from({ length: 40 }, (_, index) => `batched-${dialect}-${index}`);
    const rows = await Promise.all(
      ids.map((id) => upserts.upsert({ teamId: owner.teamId, userId: owner.userId, body: body(id) })),
    );
    expect(rows.map((row) => row?.session_id)).toEqual(ids);
    expect(rows.every((row) => row?.version === 1 && row.team_id === owner.teamId)).toBe(true);
    expect(counter.inserts).toBeGreaterThan(0);
    expect(counter.inserts).toBeLessThan(ids.length);
  });

  it('puts two pushes of one session in separate statements, so both count: versions 1 and 2', async () => {
    const { upserts, counter } = batcher(1);
    const id = `twice-${dialect}`;
    const [first, second] = await Promise.all([
      upserts.upsert({
        teamId: owner.teamId,
        userId: owner.userId,
        body: body(id, { run_phase: 'running' }),
      }),
      upserts.upsert({
        teamId: owner.teamId,
        userId: owner.userId,
        body: body(id, { run_phase: 'completed' }),
      }),
    ]);
    expect([first?.version, second?.version]).toEqual([1, 2]);
    expect(second?.run_phase).toBe('completed');
    expect(counter.inserts).toBe(2);
  });

  it('commits the pushes of one session in arrival order when an earlier one cannot share the statement', async () => {
    const { upserts } = batcher(1);
    const id = `reordered-${dialect}`;
    // The first push decides the statement's event-plan rule; the completed push without a plan has the
    // other rule and waits for the next statement, and so must the running push of the same session after it.
    const [, completed, running] = await Promise.all([
      upserts.upsert({ teamId: owner.teamId, userId: owner.userId, body: body(`${id}-other`) }),
      upserts.upsert({
        teamId: owner.teamId,
        userId: owner.userId,
        body: body(id, { run_phase: 'completed' }),
      }),
      upserts.upsert({
        teamId: owner.teamId,
        userId: owner.userId,
        body: body(id, { run_phase: 'running' }),
      }),
    ]);
    expect([completed?.version, running?.version]).toEqual([1, 2]);
    const stored = await database.db
      .selectFrom('wizard_sessions')
      .select(['run_phase', 'version'])
      .where('session_id', '=', id)
      .executeTakeFirstOrThrow();
    expect(stored).toEqual({ run_phase: 'running', version: 2 });
  });

  it("answers a push on another user's session with no row, and commits the others of its statement", async () => {
    const { upserts } = batcher(1);
    const taken = `taken-${dialect}`;
    await upserts.upsert({ teamId: owner.teamId, userId: owner.userId, body: body(taken) });
    // Both users are in the owner's team for this test: only created_by differs.
    const [foreign, own] = await Promise.all([
      upserts.upsert({
        teamId: owner.teamId,
        userId: stranger.userId,
        body: body(taken, { run_phase: 'error' }),
      }),
      upserts.upsert({ teamId: owner.teamId, userId: stranger.userId, body: body(`fresh-${dialect}`) }),
    ]);
    expect(foreign).toBeUndefined();
    expect(own?.created_by).toBe(stranger.userId);
    const stored = await database.db
      .selectFrom('wizard_sessions')
      .select(['run_phase', 'version'])
      .where('session_id', '=', taken)
      .executeTakeFirstOrThrow();
    expect(stored).toEqual({ run_phase: 'running', version: 1 });
  });

  it('fails only the push the database refuses; the rest of its statement commits', async () => {
    const { upserts } = batcher(1);
    const good = Array.from({ length: 5 }, (_, index) => `survivor-${dialect}-${index}`);
    // Past zod's checks by construction: a timestamp PostgreSQL cannot store.
    const refused = { ...body(`refused-${dialect}`), started_at: 'not a timestamp' };
    const results = await Promise.allSettled([
      ...good.map((id) => upserts.upsert({ teamId: owner.teamId, userId: owner.userId, body: body(id) })),
      upserts.upsert({ teamId: owner.teamId, userId: owner.userId, body: refused }),
    ]);
    expect(results.slice(0, 5).map((result) => result.status)).toEqual(Array(5).fill('fulfilled'));
    expect(results[5]?.status).toBe('rejected');
    const stored = await database.db
      .selectFrom('wizard_sessions')
      .select('session_id')
      .where('session_id', 'in', [...good, refused.session_id])
      .execute();
    expect(stored.map((row) => row.session_id).sort()).toEqual([...good].sort());
  });

  it('keeps the stored event_plan only in the statements of completed pushes without one', async () => {
    const { upserts } = batcher(1);
    const plan = { steps: ['install'] };
    const keeps = `keeps-plan-${dialect}`;
    const clears = `clears-plan-${dialect}`;
    for (const id of [keeps, clears])
      await upserts.upsert({
        teamId: owner.teamId,
        userId: owner.userId,
        body: body(id, { event_plan: plan }),
      });
    const [kept, cleared] = await Promise.all([
      upserts.upsert({
        teamId: owner.teamId,
        userId: owner.userId,
        body: body(keeps, { run_phase: 'completed' }),
      }),
      upserts.upsert({
        teamId: owner.teamId,
        userId: owner.userId,
        body: body(clears, { run_phase: 'running' }),
      }),
    ]);
    expect(kept?.event_plan).toEqual(plan);
    expect(cleared?.event_plan).toBeNull();
  });
});

// Two statements run at once only over several connections: PGlite has one session, so this is PostgreSQL's.
describe('upsert batching over concurrent connections (postgres)', () => {
  let database: TestDatabase;
  let owner: SeededMember;

  beforeAll(async () => {
    database = await createTestDatabase('postgres');
    owner = await seedMember(database);
  }, 60_000);

  afterAll(async () => {
    await database?.dispose();
  });

  it('holds a push back while a statement with the same session is still in flight', async () => {
    const upserts = new UpsertBatcher(database.db, { maxInFlight: 2, maxBatch: 64, maxQueued: 10_000 });
    const push = (sessionId: string, overrides: Record<string, unknown> = {}) =>
      upserts.upsert({ teamId: owner.teamId, userId: owner.userId, body: body(sessionId, overrides) });
    await push('a-blocker');
    let first: Promise<unknown> = Promise.resolve();
    let second: Promise<unknown> = Promise.resolve();
    await database.db.transaction().execute(async (trx) => {
      // The blocker's row lock holds the first statement (the blocker's row, then the session's) in flight.
      await trx
        .selectFrom('wizard_sessions')
        .select('id')
        .where('session_id', '=', 'a-blocker')
        .forUpdate()
        .execute();
      first = Promise.all([push('a-blocker'), push('b-session', { run_phase: 'running' })]);
      // Polled outside the transaction: pg_stat_activity is a snapshot taken once per transaction.
      await until(async () => {
        const { rows } = await sql<{ waiting: number }>`select count(*)::int as waiting from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`.execute(database.db);
        return (rows[0]?.waiting ?? 0) > 0;
      });
      second = push('b-session', { run_phase: 'error' });
      // Arrives with the second push and takes the free statement slot whether or not that push joins it.
      await push('c-other');
    });
    await Promise.all([first, second]);
    const stored = await database.db
      .selectFrom('wizard_sessions')
      .select(['run_phase', 'version'])
      .where('session_id', '=', 'b-session')
      .executeTakeFirstOrThrow();
    expect(stored).toEqual({ run_phase: 'error', version: 2 });
  });
});
