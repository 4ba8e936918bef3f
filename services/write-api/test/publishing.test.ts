import { execFileSync } from 'node:child_process';
import { apiErrorBodySchema, parseSessionSubject, sessionDtoSchema } from '@wizard-stream/contracts';
import type { SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, NatsServer, type TestDatabase, until } from '@wizard-stream/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import { NatsRecorder } from './support/nats-recorder.js';
import {
  getSession,
  postSession,
  seedMember,
  sessionBody,
  startTestWriteApi,
  storedVersions,
  waitUntilReady,
} from './support/write-api.js';

/** The stored version read over a brand-new connection (psql), synchronously, from inside a hook. */
function versionSeenByAnotherConnection(url: string, teamId: number, sessionId: string): string {
  return execFileSync(
    'psql',
    [
      url,
      '-tAc',
      `select version from wizard_sessions where team_id = ${teamId} and session_id = '${sessionId}'`,
    ],
    { encoding: 'utf8' },
  ).trim();
}

describe.each(DIALECTS)('publishing after commit (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let recorder: NatsRecorder;
  let api: RunningWriteApi;
  let member: SeededMember;
  let onCommit: (() => void) | undefined;
  let barriers = 0;

  /**
   * Publishes from the same write-api connection and waits for it: NATS keeps one publisher's order,
   * so any message published before it (a stray or duplicate publish) has arrived by then.
   */
  async function publishBarrier(): Promise<void> {
    barriers += 1;
    const sessionId = `barrier-${barriers}`;
    const response = await postSession(api.url, member, sessionBody(sessionId));
    expect(response.status).toBe(201);
    await recorder.waitFor(sessionId);
  }

  /** Waits until the publish of this version was confirmed, so the relay will not send it again. */
  async function untilConfirmed(sessionId: string, version: number): Promise<void> {
    await until(
      async () => (await storedVersions(database, member.teamId, sessionId))?.published_version === version,
      {
        what: `published_version of ${sessionId} to reach ${version}`,
      },
    );
  }

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    recorder = await NatsRecorder.connect(nats.url);
    api = await startTestWriteApi(database, nats.url, {}, () => onCommit?.());
    member = await seedMember(database);
    await waitUntilReady(api.url);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await recorder?.close();
    await nats?.stop();
    await database?.dispose();
  });

  it('publishes nothing before the commit and exactly one message after it', async () => {
    const sessionId = 'after-commit';
    let atCommit: { messagesSoFar: number; visibleVersion: string | Promise<unknown> } | undefined;
    onCommit = () => {
      atCommit = {
        messagesSoFar: recorder.forSession(sessionId).length,
        // PGlite has a single session, so "another connection" is a query queued on that session.
        visibleVersion: database.url
          ? versionSeenByAnotherConnection(database.url, member.teamId, sessionId)
          : storedVersions(database, member.teamId, sessionId).then((row) => String(row?.version)),
      };
    };
    const started = Date.now();
    const response = await postSession(api.url, member, sessionBody(sessionId));
    onCommit = undefined;
    expect(response.status).toBe(201);
    expect(atCommit).toBeDefined();
    expect(atCommit?.messagesSoFar).toBe(0);
    expect(await atCommit?.visibleVersion).toBe('1');

    await recorder.waitFor(sessionId, { version: 1 });
    await untilConfirmed(sessionId, 1);
    await publishBarrier();
    expect(recorder.forSession(sessionId)).toHaveLength(1);

    const [message] = recorder.forSession(sessionId);
    expect(message?.subject).toBe(`wizard.${member.teamId}.posthog-integration.nextjs`);
    // The payload is the very bytes of the HTTP response: one serializer, serialized once.
    expect(Buffer.from(message?.payload ?? []).equals(Buffer.from(response.text, 'utf8'))).toBe(true);
    const dto = sessionDtoSchema.parse(JSON.parse(response.text));
    expect(message?.headers['Wizard-Session-Id']).toBe(sessionId);
    expect(message?.headers['Wizard-Version']).toBe('1');
    const committedAt = Number(message?.headers['Wizard-Committed-At']);
    expect(Number.isSafeInteger(committedAt)).toBe(true);
    expect(committedAt).toBeGreaterThanOrEqual(started - 1000);
    expect(committedAt).toBeLessThanOrEqual(Date.now() + 1000);
    // The upsert sets updated_at and committed_at in one statement.
    expect(committedAt).toBe(Date.parse(dto.updated_at));
  });

  it('publishes every accepted update once, with its own version', async () => {
    const sessionId = 'updated-twice';
    const first = await postSession(api.url, member, sessionBody(sessionId));
    const second = await postSession(
      api.url,
      member,
      sessionBody(sessionId, { tasks: [{ id: '0', title: 'Install the SDK', status: 'completed' }] }),
    );
    expect([first.status, second.status]).toEqual([201, 200]);
    const update = await recorder.waitFor(sessionId, { version: 2 });
    expect(update.text).toBe(second.text);
    await untilConfirmed(sessionId, 2);
    await publishBarrier();
    expect(recorder.forSession(sessionId).map((message) => message.headers['Wizard-Version'])).toEqual([
      '1',
      '2',
    ]);
  });

  it('publishes nothing for an upsert the database rolled back, and leaves the row unchanged', async () => {
    const sessionId = 'rolled-back';
    const created = await postSession(api.url, member, sessionBody(sessionId));
    expect(created.status).toBe(201);
    await recorder.waitFor(sessionId, { version: 1 });
    await untilConfirmed(sessionId, 1);

    // A real failure inside the statement: the update is aborted by the database and rolled back.
    await sql`create function reject_update() returns trigger language plpgsql as $$
      begin raise exception 'updates are rejected by the test'; end $$`.execute(database.db);
    await sql
      .raw(`create trigger reject_update before update on wizard_sessions for each row
        when (old.session_id = '${sessionId}') execute function reject_update()`)
      .execute(database.db);
    let rejected: Awaited<ReturnType<typeof postSession>>;
    try {
      rejected = await postSession(
        api.url,
        member,
        sessionBody(sessionId, { run_phase: 'completed', tasks: [], handoff_text: 'never stored' }),
      );
    } finally {
      await sql`drop trigger reject_update on wizard_sessions`.execute(database.db);
      await sql`drop function reject_update()`.execute(database.db);
    }
    expect(rejected.status).toBe(500);
    expect(apiErrorBodySchema.safeParse(JSON.parse(rejected.text)).success).toBe(true);

    const stored = await getSession(api.url, member, sessionId);
    expect(stored.status).toBe(200);
    expect(stored.text).toBe(created.text);
    expect(await storedVersions(database, member.teamId, sessionId)).toEqual({
      version: 1,
      published_version: 1,
    });

    await publishBarrier();
    expect(recorder.forSession(sessionId).map((message) => message.headers['Wizard-Version'])).toEqual(['1']);
  });

  it('publishes ids containing dots on their encoded subject, decodable back to the ids', async () => {
    const sessionId = 'dotted-ids';
    const response = await postSession(
      api.url,
      member,
      sessionBody(sessionId, { workflow_id: 'a.b', skill_id: 'c.d' }),
    );
    expect(response.status).toBe(201);
    const message = await recorder.waitFor(sessionId, { version: 1 });
    expect(message.subject).toBe(`wizard.${member.teamId}.a%2Eb.c%2Ed`);
    expect(parseSessionSubject(message.subject)).toEqual({
      teamId: member.teamId,
      workflowId: 'a.b',
      skillId: 'c.d',
    });
    expect(message.text).toBe(response.text);
  });
});
