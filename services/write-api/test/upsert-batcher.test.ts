import { type UpsertSessionBody, upsertSessionBodySchema } from '@wizard-stream/contracts';
import type { DatabaseSchema, SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, type TestDatabase } from '@wizard-stream/testkit';
import type { Kysely, KyselyPlugin } from 'kysely';
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
    return { upserts: new UpsertBatcher(db, { maxInFlight, maxBatch: 64 }), counter };
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
