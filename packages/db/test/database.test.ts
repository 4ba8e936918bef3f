import { createTestDatabase, DIALECTS, type TestDatabase } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey, listApiKeys, revokeApiKey, seedTeamWithMember } from '../src/index.js';

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
    const row = await database.db
      .insertInto('wizard_sessions')
      .values({
        team_id: seeded.teamId,
        session_id: 's',
        workflow_id: 'w',
        skill_id: 'k',
        started_at: new Date(),
        run_phase: 'running',
        tasks: JSON.stringify([]),
        updated_at: new Date(),
        committed_at: new Date(),
        version: 2 ** 40,
      })
      .returning(['version', 'published_version', 'tasks'])
      .executeTakeFirstOrThrow();
    expect(row.version).toBe(2 ** 40);
    expect(row.published_version).toBe(0);
    expect(row.tasks).toEqual([]);
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
