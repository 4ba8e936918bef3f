import { createTestDatabase, DIALECTS, type TestDatabase } from '@wizard-stream/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  hashApiKey,
  listApiKeys,
  openDatabase,
  QUERY_READ_TIMEOUT,
  revokeApiKey,
  seedTeamWithMember,
} from '../src/index.js';

/** A minimal session row, straight into the table. */
function insertSession(database: TestDatabase, teamId: number, sessionId: string, version: number) {
  return database.db.insertInto('wizard_sessions').values({
    team_id: teamId,
    session_id: sessionId,
    workflow_id: 'w',
    skill_id: 'k',
    started_at: new Date(),
    run_phase: 'running',
    tasks: JSON.stringify([]),
    updated_at: new Date(),
    committed_at: new Date(),
    version,
  });
}

describe.each(DIALECTS)('database on %s', (dialect) => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase(dialect);
  }, 60_000);
  afterAll(async () => {
    await database?.dispose();
  });

  it('migrates and returns int8 as numbers in both dialects', async () => {
    const seeded = await seedTeamWithMember(database.db, {
      teamName: 'a',
      email: `a-${dialect}@example.com`,
    });
    expect(typeof seeded.teamId).toBe('number');
    const row = await insertSession(database, seeded.teamId, 's', 2 ** 40)
      .returning(['version', 'published_version', 'tasks'])
      .executeTakeFirstOrThrow();
    expect(row.version).toBe(2 ** 40);
    expect(row.published_version).toBe(0);
    expect(row.tasks).toEqual([]);
  });

  it('reads timestamptz of every year 1–9999 back as the instant written', async () => {
    const instants = [
      '0001-01-01T00:00:00.000Z',
      '0013-06-01T12:00:00.000Z',
      '0099-12-31T23:59:59.999Z',
    ].concat(['0100-01-01T00:00:00.000Z', '1969-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z']);
    for (const instant of instants) {
      const { rows } = await sql<{ at: Date }>`select ${instant}::timestamptz as at`.execute(database.db);
      expect(rows[0]?.at.toISOString(), instant).toBe(instant);
    }
  });

  it('starts sessions with no publish failures and no dead letter (migration 0002)', async () => {
    const seeded = await seedTeamWithMember(database.db, {
      teamName: 'c',
      email: `c-${dialect}@example.com`,
    });
    const row = await insertSession(database, seeded.teamId, 'fresh', 1)
      .returning(['publish_attempts', 'next_publish_at', 'dead_lettered_at', 'last_publish_error'])
      .executeTakeFirstOrThrow();
    expect(row).toEqual({
      publish_attempts: 0,
      next_publish_at: null,
      dead_lettered_at: null,
      last_publish_error: null,
    });
  });

  it('stores API keys only as hashes and revokes them once', async () => {
    const seeded = await seedTeamWithMember(database.db, {
      teamName: 'b',
      email: `b-${dialect}@example.com`,
    });
    const stored = await database.db
      .selectFrom('api_keys')
      .select(['id', 'key_hash', 'scopes'])
      .where('user_id', '=', seeded.userId)
      .executeTakeFirstOrThrow();
    expect(stored.key_hash).toBe(hashApiKey(seeded.apiKey));
    expect(stored.key_hash).not.toContain(seeded.apiKey);
    expect(stored.scopes).toEqual(['wizard_session:read', 'wizard_session:write']);
    expect((await revokeApiKey(database.db, stored.id))?.id).toBe(stored.id);
    expect(await revokeApiKey(database.db, stored.id)).toBeUndefined();
    const [listed] = await listApiKeys(database.db, seeded.userId);
    expect(listed?.revoked_at).toBeInstanceOf(Date);
  });
});

describe('statement timeout on PostgreSQL', () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase('postgres');
  }, 60_000);
  afterAll(async () => {
    await database?.dispose();
  });

  it('cancels a statement that runs longer than statementTimeoutMs (57014)', async () => {
    const timed = await openDatabase({ url: database.url, poolSize: 1, statementTimeoutMs: 300 });
    try {
      await expect(sql`select pg_sleep(2)`.execute(timed.db)).rejects.toMatchObject({
        message: expect.stringMatching(/statement timeout|Query read timeout/),
      });
      // The connection (or its replacement) serves the next statement.
      const { rows } = await sql<{ one: number }>`select 1 as one`.execute(timed.db);
      expect(rows[0]?.one).toBe(1);
    } finally {
      await timed.close();
    }
  });

  it('gives up on a server that does not answer and does not reuse that connection', async () => {
    const timed = await openDatabase({ url: database.url, poolSize: 1, statementTimeoutMs: 300 });
    try {
      await sql`create table held (id int)`.execute(database.db);
      await database.db.transaction().execute(async (trx) => {
        // The server waits on the lock without a timeout of its own: only the client's timer ends it.
        await sql`lock table held in access exclusive mode`.execute(trx);
        await sql`set statement_timeout = 0`.execute(timed.db);
        await expect(sql`select * from held`.execute(timed.db)).rejects.toThrow(QUERY_READ_TIMEOUT);
        // Still inside the lock: the stuck connection would queue this behind the blocked statement.
        const { rows } = await sql<{ one: number }>`select 1 as one`.execute(timed.db);
        expect(rows[0]?.one).toBe(1);
      });
    } finally {
      await timed.close();
    }
  });
});
