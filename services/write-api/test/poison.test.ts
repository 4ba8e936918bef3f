import { apiErrorBodySchema, MAX_BODY_BYTES, sessionDtoSchema } from '@wizard-stream/contracts';
import type { SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import { NatsRecorder } from './support/nats-recorder.js';
import {
  getSession,
  postSession,
  seedMember,
  sessionBody,
  sessionsPath,
  startTestWriteApi,
  waitUntilReady,
} from './support/write-api.js';

/** A relay that looks often and leaves a version alone only briefly. */
const FAST_RELAY = { RELAY_INTERVAL_MS: '100', RELAY_GRACE_MS: '300' };

interface Poison {
  name: string;
  /** The request body as sent, text so that numbers keep the form they were written in. */
  text: string;
  status: number;
  attr: string | null;
}

const base = (sessionId: string, overrides: Record<string, unknown> = {}) =>
  sessionBody(sessionId, { started_at: '2026-11-25T10:00:00Z', ...overrides });
const json = (sessionId: string, overrides: Record<string, unknown> = {}) =>
  JSON.stringify(base(sessionId, overrides));
/** A body whose event_plan.a is `count` copies of a number written exactly as `token`. */
const numbers = (sessionId: string, token: string, count: number) =>
  json(sessionId, { event_plan: { a: '__numbers__' } }).replace(
    '"__numbers__"',
    `[${Array(count).fill(token).join(',')}]`,
  );

/** Every item of issue 9's "Why" list that a push can carry, plus what fuzzing found. */
function corpus(): Poison[] {
  // {"event_plan":{"a":[1e20,…]}} of about 1 MB: 4.4 MB once each 1e20 is printed in full.
  const count = 200_000;
  return [
    {
      name: 'year 0 in UTC (0001-01-01T00:00:00+14:00)',
      text: json('poison-year-0', { started_at: '0001-01-01T00:00:00+14:00' }),
      status: 400,
      attr: 'started_at',
    },
    {
      name: 'year 10000 in UTC',
      text: json('poison-year-10000', { started_at: '9999-12-31T23:00:00-05:00' }),
      status: 400,
      attr: 'started_at',
    },
    {
      name: 'offset +16:00',
      text: json('poison-offset-plus', { started_at: '2026-01-02T03:04:05+16:00' }),
      status: 400,
      attr: 'started_at',
    },
    {
      name: 'offset -23:59',
      text: json('poison-offset-minus', { started_at: '2026-01-02T03:04:05-23:59' }),
      status: 400,
      attr: 'started_at',
    },
    {
      name: 'asked_at with offset +16:00',
      text: json('poison-asked-at', {
        pending_input: { id: 'q', question_count: 1, asked_at: '2026-01-02T03:04:05+16:00' },
      }),
      status: 400,
      attr: 'pending_input__asked_at',
    },
    {
      name: 'a 1 MB body of 1e20s',
      text: numbers('poison-1e20', '1e20', count),
      status: 400,
      attr: 'event_plan__a__0',
    },
    {
      name: '1e400 (stored as null)',
      text: numbers('poison-1e400', '1e400', 1),
      status: 400,
      attr: 'event_plan__a__0',
    },
    {
      name: 'an integer a double cannot hold',
      text: numbers('poison-bigint', '12345678901234567890', 1),
      status: 400,
      attr: 'event_plan__a__0',
    },
    {
      name: '1e-400 (stored as 0)',
      text: json('poison-underflow', { error: { at: '__n__' } }).replace('"__n__"', '1e-400'),
      status: 400,
      attr: 'error__at',
    },
    ...['latest', 'stream', '.', '..'].map((sessionId) => ({
      name: `session id ${sessionId}`,
      text: json(sessionId),
      status: 400,
      attr: 'session_id',
    })),
    {
      // Under the body limit, but its DTO (with created_by, timestamps, version) is more than the bus's
      // 1 MiB max_payload less the headers' room.
      name: 'a DTO larger than the bus carries',
      text: json('poison-dto-size', { event_plan: { text: 'x'.repeat(MAX_BODY_BYTES - 2000) } }),
      status: 413,
      attr: null,
    },
  ];
}

describe.each(DIALECTS)('poisoned pushes (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  let recorder: NatsRecorder;
  let poisoned: SeededMember;
  let other: SeededMember;
  /** While set, a committed push is not published: only the relay can deliver it. */
  let skipPublish = false;

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    recorder = await NatsRecorder.connect(nats.url);
    api = await startTestWriteApi(database, nats.url, { ...FAST_RELAY, RATE_LIMIT_PER_MIN: '100000' }, () =>
      skipPublish ? 'skip-publish' : undefined,
    );
    poisoned = await seedMember(database);
    other = await seedMember(database);
    await waitUntilReady(api.url);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await recorder?.close();
    await nats?.stop();
    await database?.dispose();
  });

  async function postText(member: SeededMember, text: string) {
    const response = await fetch(`${api.url}${sessionsPath(member.teamId)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${member.apiKey}` },
      body: text,
    });
    return { status: response.status, text: await response.text() };
  }

  it('answers every poison with its documented 4xx and writes nothing; the relay still delivers another team within 2 s', async () => {
    const valid = await postSession(api.url, poisoned, base('poisoned-team-session'));
    expect(valid.status).toBe(201);

    skipPublish = true;
    try {
      for (const poison of corpus()) {
        const response = await postText(poisoned, poison.text);
        expect(response.status, `${poison.name}: ${response.text.slice(0, 300)}`).toBe(poison.status);
        const error = apiErrorBodySchema.parse(JSON.parse(response.text));
        expect(error.attr, poison.name).toBe(poison.attr);
      }
      const rows = await database.db
        .selectFrom('wizard_sessions')
        .select('session_id')
        .where('team_id', '=', poisoned.teamId)
        .execute();
      expect(rows.map((row) => row.session_id)).toEqual(['poisoned-team-session']);

      // Committed and never published after its commit: only a working relay delivers it.
      const pushedAt = Date.now();
      const update = await postSession(api.url, other, base('other-team-session'));
      expect(update.status).toBe(201);
      const message = await recorder.waitFor('other-team-session', { version: 1, timeoutMs: 2000 });
      expect(message.receivedAt - pushedAt).toBeLessThan(2000);
      expect(message.subject).toBe(`wizard.${other.teamId}.posthog-integration.nextjs`);
      expect(message.text).toBe(update.text);
    } finally {
      skipPublish = false;
    }

    const list = await fetch(`${api.url}${sessionsPath(poisoned.teamId)}`, {
      headers: { authorization: `Bearer ${poisoned.apiKey}` },
    });
    expect(list.status).toBe(200);
    const page = (await list.json()) as { count: number; results: unknown[] };
    expect(page.count).toBe(1);
    expect(page.results).toHaveLength(1);
    expect(sessionDtoSchema.parse(page.results[0]).session_id).toBe('poisoned-team-session');
    const retrieved = await getSession(api.url, poisoned, 'poisoned-team-session');
    expect(retrieved.status).toBe(200);
    expect(retrieved.text).toBe(valid.text);

    // The edges of each rule are accepted, stored as the instant meant and served as the push said.
    const edges: [string, Record<string, unknown> | string, string][] = [
      ['edge-offset-plus', { started_at: '2026-01-02T03:04:05+15:59' }, '2026-01-01T11:05:05.000Z'],
      [
        'edge-offset-minus',
        { started_at: '2026-01-02T03:04:05.123456789-15:59' },
        '2026-01-02T19:03:05.123Z',
      ],
      ['edge-year-1', { started_at: '0001-01-01T00:00:00Z' }, '0001-01-01T00:00:00.000Z'],
      ['edge-year-13', { started_at: '0013-06-01T12:00:00+01:00' }, '0013-06-01T11:00:00.000Z'],
      ['edge-year-9999', { started_at: '9999-12-31T23:59:59.999+00:00' }, '9999-12-31T23:59:59.999Z'],
      ['edge-numbers', numbers('edge-numbers', '100000000000000000000', 3), '2026-11-25T10:00:00.000Z'],
      ['edge-1.0', numbers('edge-1.0', '1.0', 2), '2026-11-25T10:00:00.000Z'],
      ['edge-tiny', numbers('edge-tiny', '0.0000001', 2), '2026-11-25T10:00:00.000Z'],
      ['Latest', {}, '2026-11-25T10:00:00.000Z'],
    ];
    for (const [sessionId, patch, startedAt] of edges) {
      const text = typeof patch === 'string' ? patch : json(sessionId, patch);
      const response = await postText(poisoned, text);
      expect(response.status, `${sessionId}: ${response.text.slice(0, 300)}`).toBe(201);
      expect(JSON.parse(response.text).started_at, sessionId).toBe(startedAt);
      const stored = await getSession(api.url, poisoned, sessionId);
      expect(stored.status).toBe(200);
      expect(stored.text, sessionId).toBe(response.text);
    }
    const started = (sessionId: string) =>
      database.db
        .selectFrom('wizard_sessions')
        .select('started_at')
        .where('team_id', '=', poisoned.teamId)
        .where('session_id', '=', sessionId)
        .executeTakeFirstOrThrow();
    expect((await started('edge-offset-minus')).started_at.toISOString()).toBe('2026-01-02T19:03:05.123Z');
  }, 60_000);

  it('refuses (413) an update that would keep a stored event_plan too large to publish with its new fields', async () => {
    const sessionId = 'kept-event-plan';
    const first = await postSession(
      api.url,
      poisoned,
      base(sessionId, { event_plan: { text: 'p'.repeat(MAX_BODY_BYTES - 40_000) } }),
    );
    expect(first.status).toBe(201);
    // completed without event_plan keeps the stored plan; with a 60 KB report the DTO no longer fits.
    const completed = await postSession(
      api.url,
      poisoned,
      base(sessionId, { run_phase: 'completed', event_plan: undefined, handoff_text: 'h'.repeat(60_000) }),
    );
    expect(completed.status, completed.text.slice(0, 300)).toBe(413);
    expect(apiErrorBodySchema.parse(JSON.parse(completed.text)).code).toBe('payload_too_large');
    const stored = await getSession(api.url, poisoned, sessionId);
    expect(stored.text).toBe(first.text);
  });
});
