import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, NatsServer, type TestDatabase, until } from '@wizard-stream/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import { NatsRecorder } from './support/nats-recorder.js';
import {
  postSession,
  seedMember,
  sessionBody,
  startTestWriteApi,
  storedVersions,
  waitUntilReady,
} from './support/write-api.js';

const MAX_ATTEMPTS = 3;
const ROWS_PER_TEAM = 200;
const CLI = fileURLToPath(new URL('../src/admin/cli.ts', import.meta.url));

/** A metric's value from write-api's /metrics (0 when absent). */
async function metric(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const line = text.split('\n').find((candidate) => new RegExp(`^${name}(\\{[^}]*\\})? `).test(candidate));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe.each(DIALECTS)('a row the relay cannot publish (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  let recorder: NatsRecorder;
  let teams: SeededMember[];

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    recorder = await NatsRecorder.connect(nats.url);
    // Nothing is published after its commit: every version is the relay's to deliver.
    api = await startTestWriteApi(
      database,
      nats.url,
      {
        RELAY_INTERVAL_MS: '100',
        RELAY_GRACE_MS: '300',
        RELAY_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
        RATE_LIMIT_PER_MIN: '100000',
      },
      () => 'skip-publish',
    );
    teams = [await seedMember(database), await seedMember(database), await seedMember(database)];
    await waitUntilReady(api.url);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await recorder?.close();
    await nats?.stop();
    await database?.dispose();
  });

  it(`is set aside after ${MAX_ATTEMPTS} failed publishes while ${3 * ROWS_PER_TEAM} rows of three teams are relayed; a new push clears it`, async () => {
    const [owner] = teams as [SeededMember];
    expect((await postSession(api.url, owner, sessionBody('unpublishable'))).status).toBe(201);
    // Behind the API's back: a timestamp no serializer can print, on the oldest overdue row.
    await sql`update wizard_sessions set started_at = 'infinity', committed_at = now() - interval '1 hour'
      where team_id = ${owner.teamId} and session_id = 'unpublishable'`.execute(database.db);

    const pushes: Promise<unknown>[] = [];
    for (const member of teams) {
      for (let index = 0; index < ROWS_PER_TEAM; index++) {
        pushes.push(
          postSession(api.url, member, sessionBody(`relayed-${index}`)).then((response) =>
            expect(response.status).toBe(201),
          ),
        );
        if (pushes.length % 16 === 0) await Promise.all(pushes.splice(0));
      }
    }
    await Promise.all(pushes);

    const delivered = () =>
      new Set(
        recorder.messages
          .filter((message) => message.headers['Wizard-Session-Id']?.startsWith('relayed-'))
          .map((message) => `${message.subject} ${message.headers['Wizard-Session-Id']}`),
      ).size;
    await until(() => delivered() === 3 * ROWS_PER_TEAM, {
      timeoutMs: 30_000,
      what: `all ${3 * ROWS_PER_TEAM} relayed rows on NATS`,
    });

    const setAside = await until(
      () =>
        database.db
          .selectFrom('wizard_sessions')
          .select(['publish_attempts', 'dead_lettered_at', 'last_publish_error', 'published_version'])
          .where('team_id', '=', owner.teamId)
          .where('session_id', '=', 'unpublishable')
          .where('dead_lettered_at', 'is not', null)
          .executeTakeFirst(),
      { timeoutMs: 20_000, what: 'the unpublishable row to be dead-lettered' },
    );
    expect(setAside.publish_attempts).toBe(MAX_ATTEMPTS);
    expect(setAside.published_version).toBe(0);
    expect(setAside.last_publish_error).toBeTruthy();
    expect(recorder.forSession('unpublishable')).toHaveLength(0);

    // Counted as what happened: the failures and the dead letter, and only real publishes as republished.
    await until(async () => (await metric(api.url, 'wizard_relay_dead_lettered')) === 1, {
      what: 'the dead-letter gauge',
    });
    expect(await metric(api.url, 'wizard_relay_failures_total')).toBe(MAX_ATTEMPTS);
    expect(await metric(api.url, 'wizard_relay_dead_letters_total')).toBe(1);
    expect(await metric(api.url, 'wizard_relay_republished_total')).toBe(3 * ROWS_PER_TEAM);
    // The backlog gauges leave the set-aside row out, so they do not page forever.
    await until(async () => (await metric(api.url, 'wizard_relay_backlog')) === 0, {
      what: 'the relay backlog gauge to leave the dead letter out',
    });
    expect(await metric(api.url, 'wizard_relay_oldest_age_seconds')).toBe(0);

    // A new push of the session replaces the bad value and gives it a fresh start at the relay.
    const fixed = await postSession(api.url, owner, sessionBody('unpublishable'));
    expect(fixed.status).toBe(200);
    const message = await recorder.waitFor('unpublishable', { version: 2, timeoutMs: 5000 });
    expect(message.text).toBe(fixed.text);
    await until(
      async () => (await storedVersions(database, owner.teamId, 'unpublishable'))?.published_version === 2,
      { what: 'the fixed version to be confirmed' },
    );
    const cleared = await database.db
      .selectFrom('wizard_sessions')
      .select(['publish_attempts', 'dead_lettered_at', 'next_publish_at'])
      .where('team_id', '=', owner.teamId)
      .where('session_id', '=', 'unpublishable')
      .executeTakeFirstOrThrow();
    expect(cleared).toEqual({ publish_attempts: 0, dead_lettered_at: null, next_publish_at: null });
  }, 90_000);

  // The CLI opens the database itself, which an in-memory PGlite cannot share.
  if (dialect === 'postgres')
    it('lists and retries dead letters with the admin CLI', async () => {
      const [, member] = teams as [SeededMember, SeededMember];
      expect((await postSession(api.url, member, sessionBody('cli-dead-letter'))).status).toBe(201);
      await sql`update wizard_sessions set started_at = 'infinity', committed_at = now() - interval '1 hour'
        where team_id = ${member.teamId} and session_id = 'cli-dead-letter'`.execute(database.db);
      await until(
        async () =>
          (
            await database.db
              .selectFrom('wizard_sessions')
              .select('dead_lettered_at')
              .where('team_id', '=', member.teamId)
              .where('session_id', '=', 'cli-dead-letter')
              .executeTakeFirst()
          )?.dead_lettered_at,
        { timeoutMs: 20_000, what: 'the row to be dead-lettered' },
      );
      const run = (...args: string[]) =>
        promisify(execFile)(process.execPath, ['--import', 'tsx', CLI, ...args], {
          env: { ...process.env, DATABASE_URL: database.url },
        });
      const listed = await run('dead-letters', 'list', '--team', String(member.teamId));
      expect(listed.stdout).toContain(`${member.teamId}\tcli-dead-letter\tv1\t${MAX_ATTEMPTS} attempts`);

      // Fixed behind the API's back too, then handed back: the relay publishes it.
      await sql`update wizard_sessions set started_at = '2026-01-02T03:04:05Z'
        where team_id = ${member.teamId} and session_id = 'cli-dead-letter'`.execute(database.db);
      const retried = await run(
        'dead-letters',
        'retry',
        '--team',
        String(member.teamId),
        '--session',
        'cli-dead-letter',
      );
      expect(retried.stdout).toContain('1 dead-lettered session(s) given back to the relay');
      const message = await recorder.waitFor('cli-dead-letter', { version: 1, timeoutMs: 5000 });
      expect(JSON.parse(message.text).started_at).toBe('2026-01-02T03:04:05.000Z');
      expect((await run('dead-letters', 'list')).stdout).not.toContain('cli-dead-letter');
    }, 60_000);
});
