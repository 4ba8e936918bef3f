import type { SessionRecord } from '@wizard-stream/contracts';
import { DIALECTS, metricValue } from '@wizard-stream/testkit';
import Fastify from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendConditionalSession } from '../src/sessions/conditional.js';
import { type Harness, startHarness, uniqueSessionBody } from './support/harness.js';
import { NatsRecorder } from './support/nats-recorder.js';
import { sessionsPath } from './support/write-api.js';

const polls = (metrics: string, source: string, result: string) =>
  metricValue(metrics, 'wizard_latest_requests_total', { source, result });

describe.each(DIALECTS)('conditional reads and PostHog parity on %s', (dialect) => {
  let h: Harness;
  let path: string;
  let recorder: NatsRecorder;

  beforeAll(async () => {
    h = await startHarness(dialect);
    path = sessionsPath(h.alice.teamId);
    recorder = await NatsRecorder.connect(h.nats.url);
  }, 60_000);
  afterAll(async () => {
    await recorder?.close();
    await h?.close();
  });

  it('latest and retrieve carry an ETag; If-None-Match answers 304 with an empty body until the session changes', async () => {
    const body = uniqueSessionBody({ workflow_id: `etag-${dialect}` });
    await h.request('POST', path, { body });
    const latestUrl = `${path}latest/?workflow_id=etag-${dialect}`;
    const detailUrl = `${path}${encodeURIComponent(body.session_id as string)}/`;

    const first = await h.request('GET', latestUrl);
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^W\/"1\.[A-Za-z0-9_-]{16}"$/);
    expect(first.headers.get('cache-control')).toBe('private, no-cache');
    const detail = await h.request('GET', detailUrl);
    expect(detail.headers.get('etag')).toBe(etag);

    for (const url of [latestUrl, detailUrl]) {
      const again = await h.request('GET', url, { headers: { 'if-none-match': etag as string } });
      expect(again.status).toBe(304);
      expect(again.text).toBe('');
      expect(again.headers.get('etag')).toBe(etag);
      // A list of tags, and the strong form of the same tag, match too (weak comparison).
      const listed = await h.request('GET', url, {
        headers: { 'if-none-match': `"nope", ${(etag as string).slice(2)}` },
      });
      expect(listed.status).toBe(304);
      const star = await h.request('GET', url, { headers: { 'if-none-match': '*' } });
      expect(star.status).toBe(304);
    }

    await h.request('POST', path, { body: { ...body, run_phase: 'completed' } });
    const changed = await h.request('GET', latestUrl, { headers: { 'if-none-match': etag as string } });
    expect(changed.status).toBe(200);
    expect(changed.json.version).toBe(2);
    expect(changed.headers.get('etag')).toMatch(/^W\/"2\./);
    expect(changed.headers.get('etag')).not.toBe(etag);
  });

  it('the ETag tells sessions apart and changes when the session reads as stale', async () => {
    const a = uniqueSessionBody({ workflow_id: `stale-${dialect}` });
    const b = uniqueSessionBody({ workflow_id: `stale-${dialect}` });
    const tagA = (await h.request('POST', path, { body: a })).json;
    const tagB = (await h.request('POST', path, { body: b })).json;
    expect(tagA.version).toBe(tagB.version);
    const etagOf = async (sessionId: string) =>
      (await h.request('GET', `${path}${encodeURIComponent(sessionId)}/`)).headers.get('etag');
    const before = await etagOf(a.session_id as string);
    expect(before).not.toBe(await etagOf(b.session_id as string));

    // Eleven minutes without an update: is_stale is true on read before the sweeper records a version.
    await sql`update wizard_sessions set updated_at = now() - interval '11 minutes' where session_id = ${a.session_id}`.execute(
      h.database.db,
    );
    const stale = await h.request('GET', `${path}${encodeURIComponent(a.session_id as string)}/`, {
      headers: { 'if-none-match': before as string },
    });
    expect(stale.status).toBe(200);
    expect(stale.json.is_stale).toBe(true);
    expect(stale.headers.get('etag')).toBe(`${(before as string).slice(0, -1)}.stale"`);
  });

  it('counts X-Wizard-Poll-Source per result, with unknown sources as `other`', async () => {
    const workflow = `poll-${dialect}`;
    const latestUrl = `${path}latest/?workflow_id=${workflow}`;
    const before = (await h.request('GET', '/metrics', { key: null })).text;
    await h.request('GET', latestUrl, { headers: { 'x-wizard-poll-source': 'sdk' } }); // empty
    await h.request('POST', path, { body: uniqueSessionBody({ workflow_id: workflow }) });
    const hit = await h.request('GET', latestUrl, { headers: { 'x-wizard-poll-source': 'sdk' } });
    await h.request('GET', latestUrl, {
      headers: { 'x-wizard-poll-source': 'sdk', 'if-none-match': hit.headers.get('etag') as string },
    });
    for (const made_up of ['anything', 'x'.repeat(200), 'detector2']) {
      await h.request('GET', latestUrl, { headers: { 'x-wizard-poll-source': made_up } });
    }
    const after = (await h.request('GET', '/metrics', { key: null })).text;
    const delta = (source: string, result: string) =>
      polls(after, source, result) - polls(before, source, result);
    expect(delta('sdk', 'empty')).toBe(1);
    expect(delta('sdk', 'hit')).toBe(1);
    expect(delta('sdk', 'not_modified')).toBe(1);
    expect(delta('other', 'hit')).toBe(3);
    expect(after).not.toContain('source="anything"');
    expect(after).not.toContain('source="detector2"');
  });

  it('accepts the task status `cancelled` and stores, serves and publishes it as `canceled`', async () => {
    const body = uniqueSessionBody({
      tasks: [
        { id: '1', title: 'Skipped by the CLI', status: 'cancelled' },
        { id: '2', title: 'Canceled', status: 'canceled' },
      ],
    });
    const created = await h.request('POST', path, { body });
    expect(created.status).toBe(201);
    expect(created.json.tasks.map((task: { status: string }) => task.status)).toEqual([
      'canceled',
      'canceled',
    ]);
    const stored = await h.database.db
      .selectFrom('wizard_sessions')
      .select('tasks')
      .where('session_id', '=', body.session_id as string)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(stored.tasks)).not.toContain('cancelled');
    const read = await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`);
    expect(read.text).toBe(created.text);
    const published = await recorder.waitFor(body.session_id as string);
    expect(published.text).toBe(created.text);
    // Any other spelling is still refused.
    const refused = await h.request('POST', path, {
      body: uniqueSessionBody({ tasks: [{ id: '1', title: 't', status: 'canceld' }] }),
    });
    expect(refused.status).toBe(400);
    expect(refused.json.attr).toBe('tasks__0__status');
  });
});

describe('STREAM_KILLSWITCH on write-api', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('pglite', { STREAM_KILLSWITCH: '1' });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('makes latest answer 204 after authentication, before validation, and counts it', async () => {
    const path = sessionsPath(h.alice.teamId);
    await h.request('POST', path, { body: uniqueSessionBody({ workflow_id: 'ks' }) });
    const latest = await h.request('GET', `${path}latest/?workflow_id=ks`, {
      headers: { 'x-wizard-poll-source': 'transport' },
    });
    expect(latest.status).toBe(204);
    expect(latest.text).toBe('');
    // Even without workflow_id (PostHog checks the killswitch first)…
    expect((await h.request('GET', `${path}latest/`)).status).toBe(204);
    // …but never without a credential.
    expect((await h.request('GET', `${path}latest/?workflow_id=ks`, { key: null })).status).toBe(401);
    // Pushes and the other reads are unaffected.
    expect((await h.request('GET', `${path}?workflow_id=ks`)).json.count).toBe(1);
    const metrics = (await h.request('GET', '/metrics', { key: null })).text;
    expect(polls(metrics, 'transport', 'killswitch')).toBe(1);
  });
});

describe('sendConditionalSession', () => {
  it('answers 304 without serializing the session', async () => {
    let serialized = 0;
    const record: SessionRecord = {
      teamId: 1,
      sessionId: 's"1',
      workflowId: 'w',
      skillId: 's',
      startedAt: new Date(),
      runPhase: 'completed',
      tasks: [],
      eventPlan: null,
      error: null,
      pendingInput: null,
      handoffText: null,
      createdBy: null,
      createdAt: new Date(),
      updatedAt: new Date(),
      version: 7,
    };
    const app = Fastify();
    app.get('/', (request, reply) => {
      sendConditionalSession(request, reply, record, () => `{"n":${++serialized}}`, 60_000);
    });
    try {
      const first = await app.inject({ method: 'GET', url: '/' });
      expect(first.body).toBe('{"n":1}');
      const etag = first.headers.etag as string;
      expect(etag).not.toContain('s"1');
      const second = await app.inject({ method: 'GET', url: '/', headers: { 'if-none-match': etag } });
      expect(second.statusCode).toBe(304);
      expect(serialized).toBe(1);
    } finally {
      await app.close();
    }
  });
});
