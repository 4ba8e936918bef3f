import { apiErrorBodySchema, sessionDtoSchema } from '@wizard-stream/contracts';
import { DIALECTS, until } from '@wizard-stream/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Harness, startHarness, uniqueSessionBody } from './support/harness.js';
import { INTERNAL_API_TOKEN, sessionsPath } from './support/write-api.js';

describe.each(DIALECTS)('write-api REST on %s (parity with the PostHog implementation)', (dialect) => {
  let h: Harness;
  let path: string;
  const rowCount = async (sessionId: string) =>
    Number(
      (
        await h.database.db
          .selectFrom('wizard_sessions')
          .select((eb) => eb.fn.countAll<number>().as('count'))
          .where('session_id', '=', sessionId)
          .executeTakeFirstOrThrow()
      ).count,
    );

  beforeAll(async () => {
    h = await startHarness(dialect);
    path = sessionsPath(h.alice.teamId);
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('creates a session: 201, the DTO, one row', async () => {
    const body = uniqueSessionBody();
    const response = await h.request('POST', path, { body });
    expect(response.status).toBe(201);
    const dto = sessionDtoSchema.parse(response.json);
    expect(dto).toMatchObject({
      session_id: body.session_id,
      team_id: h.alice.teamId,
      version: 1,
      is_stale: false,
    });
    expect(dto.created_by).toEqual({ id: h.alice.userId, first_name: 'Alice', email: 'alice@example.com' });
    expect(response.json).not.toHaveProperty('timestamp');
    expect(await rowCount(body.session_id as string)).toBe(1);
  });

  it('re-posting the same session_id updates it: 200, tasks replaced, version +1, still one row', async () => {
    const body = uniqueSessionBody();
    await h.request('POST', path, { body });
    const tasks = [{ id: '1', title: 'Add events', status: 'completed' }];
    const response = await h.request('POST', path, { body: { ...body, tasks } });
    expect(response.status).toBe(200);
    expect(response.json.tasks).toEqual(tasks);
    expect(response.json.version).toBe(2);
    expect(await rowCount(body.session_id as string)).toBe(1);
  });

  it('another user re-posting the session gets 403 and the row is untouched', async () => {
    const body = uniqueSessionBody();
    const created = await h.request('POST', path, { body });
    const response = await h.request('POST', path, {
      key: h.carol.apiKey,
      body: { ...body, run_phase: 'error' },
    });
    expect(response.status).toBe(403);
    expect(apiErrorBodySchema.parse(response.json).code).toBe('permission_denied');
    const stored = await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`);
    expect(stored.json).toEqual(created.json);
  });

  it('a different session_id creates a new row', async () => {
    const first = uniqueSessionBody();
    const second = uniqueSessionBody({ workflow_id: first.workflow_id });
    expect((await h.request('POST', path, { body: first })).status).toBe(201);
    expect((await h.request('POST', path, { body: second })).status).toBe(201);
    expect(await rowCount(first.session_id as string)).toBe(1);
    expect(await rowCount(second.session_id as string)).toBe(1);
  });

  it('lists ordered by started_at desc, filtered by workflow and skill, a blank skill_id ignored', async () => {
    const workflow = `list-${dialect}`;
    const older = uniqueSessionBody({
      workflow_id: workflow,
      skill_id: 'django',
      started_at: '2026-11-25T08:00:00Z',
    });
    const newer = uniqueSessionBody({
      workflow_id: workflow,
      skill_id: 'nextjs',
      started_at: '2026-11-25T09:00:00Z',
    });
    await h.request('POST', path, { body: older });
    await h.request('POST', path, { body: newer });
    const all = await h.request('GET', `${path}?workflow_id=${workflow}&skill_id=`);
    expect(all.status).toBe(200);
    expect(all.json.count).toBe(2);
    expect(all.json.results.map((s: { session_id: string }) => s.session_id)).toEqual([
      newer.session_id,
      older.session_id,
    ]);
    const django = await h.request('GET', `${path}?workflow_id=${workflow}&skill_id=django`);
    expect(django.json.results.map((s: { session_id: string }) => s.session_id)).toEqual([older.session_id]);
  });

  it('paginates with limit and offset and links next/previous', async () => {
    const workflow = `page-${dialect}`;
    for (let hour = 1; hour <= 3; hour++) {
      await h.request('POST', path, {
        body: uniqueSessionBody({ workflow_id: workflow, started_at: `2026-11-25T0${hour}:00:00Z` }),
      });
    }
    const first = await h.request('GET', `${path}?workflow_id=${workflow}&limit=2`);
    expect(first.json.results).toHaveLength(2);
    expect(first.json.previous).toBeNull();
    const next = new URL(first.json.next);
    expect(next.searchParams.get('offset')).toBe('2');
    const second = await h.request('GET', `${next.pathname}${next.search}`);
    expect(second.json.results).toHaveLength(1);
    expect(second.json.next).toBeNull();
    expect(new URL(second.json.previous).searchParams.get('offset')).toBe('0');
    expect((await h.request('GET', `${path}?limit=201`)).status).toBe(400);
    expect((await h.request('GET', `${path}?offset=-1`)).status).toBe(400);
  });

  it('retrieves a session by id (200) and answers 404 for an unknown one', async () => {
    const body = uniqueSessionBody();
    await h.request('POST', path, { body });
    const found = await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`);
    expect(found.status).toBe(200);
    expect(found.json.session_id).toBe(body.session_id);
    const missing = await h.request('GET', `${path}no-such-session/`);
    expect(missing.status).toBe(404);
    expect(apiErrorBodySchema.parse(missing.json).code).toBe('not_found');
  });

  it('retrieves a session whose id has the full 255 characters; a malformed URL is a 400 error body', async () => {
    const body = uniqueSessionBody({ session_id: `long-${dialect}-`.padEnd(255, 'é') });
    expect((body.session_id as string).length).toBe(255);
    expect((await h.request('POST', path, { body })).status).toBe(201);
    const found = await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`);
    expect(found.status).toBe(200);
    expect(found.json.session_id).toBe(body.session_id);
    const malformed = await h.request('GET', `${path}%ZZ/`);
    expect(malformed.status).toBe(400);
    expect(apiErrorBodySchema.parse(malformed.json).type).toBe('invalid_request');
  });

  it('links list pages whatever the forwarded host and scheme headers hold (never a 500)', async () => {
    const workflow = `forwarded-${dialect}`;
    for (let index = 0; index < 2; index++)
      await h.request('POST', path, { body: uniqueSessionBody({ workflow_id: workflow }) });
    const malformed: Record<string, string>[] = [
      { 'x-forwarded-host': 'bad host' },
      { 'x-forwarded-proto': 'a b' },
    ];
    for (const headers of malformed) {
      const page = await h.request('GET', `${path}?workflow_id=${workflow}&limit=1`, { headers });
      expect(page.status).toBe(200);
      expect(page.json.next).toContain(`/wizard/sessions/?workflow_id=${workflow}&limit=1&offset=1`);
    }
  });

  it('answers 400 to a timestamp PostgreSQL cannot store (year 0), writing nothing', async () => {
    const body = uniqueSessionBody({ started_at: '0000-06-01T00:00:00Z' });
    const response = await h.request('POST', path, { body });
    expect(response.status).toBe(400);
    expect(apiErrorBodySchema.parse(response.json).attr).toBe('started_at');
    expect(await rowCount(body.session_id as string)).toBe(0);
  });

  it('latest returns the newest session, ties broken by created_at, as a bare DTO', async () => {
    const workflow = `latest-${dialect}`;
    const started = '2026-11-25T07:00:00Z';
    await h.request('POST', path, {
      body: uniqueSessionBody({ workflow_id: workflow, started_at: '2026-11-25T06:00:00Z' }),
    });
    const tieFirst = uniqueSessionBody({ workflow_id: workflow, started_at: started });
    const tieSecond = uniqueSessionBody({ workflow_id: workflow, started_at: started });
    await h.request('POST', path, { body: tieFirst });
    await h.request('POST', path, { body: tieSecond });
    const latest = await h.request('GET', `${path}latest/?workflow_id=${workflow}`);
    expect(latest.status).toBe(200);
    expect(latest.json.session_id).toBe(tieSecond.session_id);
    expect(latest.json).not.toHaveProperty('results');
  });

  it('latest: a skill filter narrows to 204, no session is 204 with an empty body, no workflow_id is 400', async () => {
    const workflow = `latest-skill-${dialect}`;
    await h.request('POST', path, { body: uniqueSessionBody({ workflow_id: workflow, skill_id: 'nextjs' }) });
    const narrowed = await h.request('GET', `${path}latest/?workflow_id=${workflow}&skill_id=django`);
    expect(narrowed.status).toBe(204);
    expect(narrowed.text).toBe('');
    const none = await h.request('GET', `${path}latest/?workflow_id=never-pushed`);
    expect(none.status).toBe(204);
    expect(none.text).toBe('');
    const missing = await h.request('GET', `${path}latest/`);
    expect(missing.status).toBe(400);
    expect(missing.json).toMatchObject({ type: 'validation_error', attr: 'workflow_id' });
  });

  it('refuses the session ids no URL can name (latest, stream, dot segments) and keeps the latest action', async () => {
    const workflow = `shadow-${dialect}`;
    for (const sessionId of ['latest', 'stream', '.', '..']) {
      const named = uniqueSessionBody({ session_id: sessionId, workflow_id: workflow });
      const refused = await h.request('POST', path, { body: named });
      expect(refused.status, sessionId).toBe(400);
      expect(apiErrorBodySchema.parse(refused.json).attr).toBe('session_id');
      expect(await rowCount(sessionId)).toBe(0);
    }
    const newer = uniqueSessionBody({ workflow_id: workflow, started_at: '2026-11-21T00:00:00Z' });
    expect((await h.request('POST', path, { body: newer })).status).toBe(201);
    const latest = await h.request('GET', `${path}latest/?workflow_id=${workflow}`);
    expect(latest.json.session_id).toBe(newer.session_id);
  });

  it('answers 405 to PUT, PATCH and DELETE', async () => {
    const body = uniqueSessionBody();
    await h.request('POST', path, { body });
    for (const method of ['PUT', 'PATCH', 'DELETE']) {
      for (const target of [path, `${path}${encodeURIComponent(body.session_id as string)}/`]) {
        const response = await h.request(method, target, { body });
        expect(response.status, `${method} ${target}`).toBe(405);
        expect(apiErrorBodySchema.parse(response.json).code).toBe('method_not_allowed');
      }
    }
    expect(await rowCount(body.session_id as string)).toBe(1);
  });

  it.each([
    ['task status pizza', { tasks: [{ id: '0', title: 't', status: 'pizza' }] }, 'tasks__0__status'],
    ['run_phase exploded', { run_phase: 'exploded' }, 'run_phase'],
    [
      'a non-string prompt',
      { pending_input: { id: 'q', question_count: 1, prompts: [42] } },
      'pending_input__prompts__0',
    ],
    [
      'a 2001-character prompt',
      { pending_input: { id: 'q', question_count: 1, prompts: ['x'.repeat(2001)] } },
      'pending_input__prompts__0',
    ],
    [
      '11 prompts',
      { pending_input: { id: 'q', question_count: 11, prompts: Array(11).fill('why?') } },
      'pending_input__prompts',
    ],
    ['a pending_input without id', { pending_input: { question_count: 1 } }, 'pending_input__id'],
    ['question_count 0', { pending_input: { id: 'q', question_count: 0 } }, 'pending_input__question_count'],
    ['a workflow_id with a space', { workflow_id: 'posthog integration' }, 'workflow_id'],
    ['a skill_id with a wildcard', { skill_id: '*' }, 'skill_id'],
  ])('rejects %s with 400 naming the field, and writes nothing', async (_name, patch, attr) => {
    const body = uniqueSessionBody(patch);
    const response = await h.request('POST', path, { body });
    expect(response.status).toBe(400);
    expect(apiErrorBodySchema.parse(response.json)).toMatchObject({ type: 'validation_error', attr });
    expect(await rowCount(body.session_id as string)).toBe(0);
  });

  it("hides another team's sessions on list, retrieve and latest", async () => {
    const body = uniqueSessionBody({ workflow_id: `isolated-${dialect}` });
    await h.request('POST', path, { body });
    const bobs = sessionsPath(h.bob.teamId);
    const list = await h.request('GET', `${bobs}?workflow_id=isolated-${dialect}`, { key: h.bob.apiKey });
    expect(list.json.count).toBe(0);
    expect(
      (
        await h.request('GET', `${bobs}${encodeURIComponent(body.session_id as string)}/`, {
          key: h.bob.apiKey,
        })
      ).status,
    ).toBe(404);
    expect(
      (await h.request('GET', `${bobs}latest/?workflow_id=isolated-${dialect}`, { key: h.bob.apiKey }))
        .status,
    ).toBe(204);
    // And bob cannot reach team 1's URLs at all.
    expect(
      (await h.request('GET', `${path}?workflow_id=isolated-${dialect}`, { key: h.bob.apiKey })).status,
    ).toBe(404);
  });

  it('round-trips event_plan and error as free JSON objects', async () => {
    const eventPlan = {
      events: [{ name: 'signed_up', description: 'A user signs up' }],
      nested: { deep: [1, null, true] },
    };
    const error = { type: 'wizard_error', message: 'Wizard run failed', code: 'E42', detail: { step: 3 } };
    const body = uniqueSessionBody({ run_phase: 'error', event_plan: eventPlan, error });
    await h.request('POST', path, { body });
    const stored = await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`);
    expect(stored.json.event_plan).toEqual(eventPlan);
    expect(stored.json.error).toEqual(error);
  });

  it('keeps the stored event_plan when a completed push omits it', async () => {
    const eventPlan = { events: [{ name: 'a', description: '' }] };
    const body = uniqueSessionBody({ event_plan: eventPlan });
    await h.request('POST', path, { body });
    const { event_plan: _omitted, ...withoutPlan } = body;
    const completed = await h.request('POST', path, { body: { ...withoutPlan, run_phase: 'completed' } });
    expect(completed.json.event_plan).toEqual(eventPlan);
    const running = await h.request('POST', path, { body: { ...withoutPlan, run_phase: 'running' } });
    expect(running.json.event_plan).toBeNull();
  });

  it('keeps handoff_text, leading indentation intact, across pushes without it', async () => {
    const report = '    indented code block\n\n# Report\n  - item  \n';
    const body = uniqueSessionBody({ run_phase: 'completed', handoff_text: report });
    expect((await h.request('POST', path, { body })).json.handoff_text).toBe(report);
    expect((await h.request('POST', path, { body: { ...body, handoff_text: null } })).json.handoff_text).toBe(
      report,
    );
    expect((await h.request('POST', path, { body: { ...body, handoff_text: '' } })).json.handoff_text).toBe(
      report,
    );
    const { handoff_text: _omitted, ...withoutReport } = body;
    expect((await h.request('POST', path, { body: withoutReport })).json.handoff_text).toBe(report);
  });

  it('stores a sensitive pending_input without its prompts', async () => {
    const body = uniqueSessionBody({
      pending_input: { id: 'q1', question_count: 1, sensitive: true, prompts: ['Paste your secret key'] },
    });
    const response = await h.request('POST', path, { body });
    expect(response.json.pending_input).toEqual({ id: 'q1', question_count: 1, sensitive: true });
    const row = await h.database.db
      .selectFrom('wizard_sessions')
      .select('pending_input')
      .where('session_id', '=', body.session_id as string)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row.pending_input)).not.toContain('secret');
  });

  it('keeps pending_input with asked_at on list, retrieve and latest', async () => {
    const pendingInput = {
      id: 'q2',
      asked_at: '2026-11-25T10:05:00.000Z',
      question_count: 2,
      sensitive: false,
      prompts: ['A?', 'B?'],
    };
    const workflow = `pending-${dialect}`;
    const body = uniqueSessionBody({ workflow_id: workflow, pending_input: pendingInput });
    await h.request('POST', path, { body });
    const list = await h.request('GET', `${path}?workflow_id=${workflow}`);
    const one = await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`);
    const latest = await h.request('GET', `${path}latest/?workflow_id=${workflow}`);
    for (const dto of [list.json.results[0], one.json, latest.json])
      expect(dto.pending_input).toEqual(pendingInput);
  });

  it.each([
    ['fresh', 'running', 0, false],
    ['1 s under 10 min', 'running', 599_000, false],
    ['1 s over 10 min', 'running', 601_000, true],
    ['idle, over 10 min', 'idle', 601_000, true],
    ['completed, long ago', 'completed', 86_400_000, false],
    ['error, long ago', 'error', 86_400_000, false],
  ])('computes is_stale: %s', async (_name, runPhase, ageMs, stale) => {
    const body = uniqueSessionBody({ run_phase: runPhase });
    await h.request('POST', path, { body });
    await h.database.db
      .updateTable('wizard_sessions')
      .set({ updated_at: sql<Date>`now() - make_interval(secs => ${ageMs / 1000})` })
      .where('session_id', '=', body.session_id as string)
      .execute();
    const stored = await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`);
    expect(stored.json.is_stale).toBe(stale);
  });

  it('serves the wizard_sessions alias like the main path', async () => {
    const alias = `/api/projects/${h.alice.teamId}/wizard_sessions/`;
    const body = uniqueSessionBody();
    expect((await h.request('POST', alias, { body })).status).toBe(201);
    expect((await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`)).status).toBe(
      200,
    );
    expect((await h.request('GET', `${alias}${encodeURIComponent(body.session_id as string)}`)).status).toBe(
      200,
    );
  });

  describe('authentication and authorization', () => {
    it('answers 401 without credentials and with a bad key', async () => {
      const missing = await h.request('GET', path, { key: null });
      expect(missing.status).toBe(401);
      expect(missing.json.code).toBe('not_authenticated');
      const bad = await h.request('GET', path, { key: 'wsk_not-a-key' });
      expect(bad.status).toBe(401);
      expect(bad.json.code).toBe('authentication_failed');
    });

    it('answers 404 for a project the user is not a member of, and for a malformed project id', async () => {
      expect((await h.request('GET', sessionsPath(h.bob.teamId))).status).toBe(404);
      expect((await h.request('GET', '/api/projects/abc/wizard/sessions/')).status).toBe(404);
    });

    it('answers 401 before 404: a bad key on a malformed project id', async () => {
      const response = await h.request('GET', '/api/projects/abc/wizard/sessions/', { key: 'wsk_not-a-key' });
      expect(response.status).toBe(401);
      expect(response.json.code).toBe('authentication_failed');
      // The internal token is no credential on the public listener.
      const internal = await h.request('GET', '/api/projects/abc/wizard/sessions/', {
        key: INTERNAL_API_TOKEN,
      });
      expect(internal.status).toBe(401);
    });

    it('answers 403 when the key lacks the scope, writing nothing', async () => {
      const body = uniqueSessionBody();
      const response = await h.request('POST', path, { key: h.reader.apiKey, body });
      expect(response.status).toBe(403);
      expect(await rowCount(body.session_id as string)).toBe(0);
      expect((await h.request('GET', path, { key: h.reader.apiKey })).status).toBe(200);
    });

    it('mints stream tokens that read one team only and never write', async () => {
      const minted = await h.request('POST', `/api/projects/${h.alice.teamId}/wizard/stream_tokens/`);
      expect(minted.status).toBe(201);
      const { token, expires_at } = minted.json;
      const ttl = Date.parse(expires_at) - Date.now();
      expect(ttl).toBeGreaterThan(9 * 60_000);
      expect(ttl).toBeLessThanOrEqual(10 * 60_000);
      expect(
        (await h.request('GET', `${path}?token=${encodeURIComponent(token)}`, { key: null })).status,
      ).toBe(200);
      expect((await h.request('GET', path, { key: token })).status).toBe(200);
      expect(
        (await h.request('GET', `${sessionsPath(h.bob.teamId)}?token=${token}`, { key: null })).status,
      ).toBe(404);
      expect((await h.request('POST', path, { key: token, body: uniqueSessionBody() })).status).toBe(403);
      const forged = `${token.slice(0, -2)}xx`;
      expect((await h.request('GET', path, { key: forged })).status).toBe(401);
      expect(
        (await h.request('POST', `/api/projects/${h.alice.teamId}/wizard/stream_tokens/`, { key: null }))
          .status,
      ).toBe(401);
    });

    it('refuses the internal token on the public listener, for reads and writes', async () => {
      expect(
        (
          await h.request('GET', `${sessionsPath(h.bob.teamId)}latest/?workflow_id=x`, {
            key: INTERNAL_API_TOKEN,
          })
        ).status,
      ).toBe(401);
      expect(
        (await h.request('POST', path, { key: INTERNAL_API_TOKEN, body: uniqueSessionBody() })).status,
      ).toBe(401);
    });
  });

  describe('request limits', () => {
    it('answers 413 to a body over 1 MiB and writes nothing', async () => {
      const body = uniqueSessionBody({ error: { blob: 'x'.repeat(1024 * 1024) } });
      const response = await h.request('POST', path, { body });
      expect(response.status).toBe(413);
      expect(apiErrorBodySchema.parse(response.json).code).toBe('payload_too_large');
      expect(await rowCount(body.session_id as string)).toBe(0);
    });

    it('answers 400 to malformed JSON and 415 to a non-JSON content type', async () => {
      expect(
        (
          await h.request('POST', path, {
            rawBody: '{"session_id":',
            headers: { 'content-type': 'application/json' },
          })
        ).status,
      ).toBe(400);
      expect(
        (
          await h.request('POST', path, {
            rawBody: 'a=b',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
          })
        ).status,
      ).toBe(415);
    });
  });

  it('serves liveness, readiness and metrics', async () => {
    expect((await h.request('POST', path, { body: uniqueSessionBody() })).status).toBe(201);
    expect((await h.request('GET', '/healthz', { key: null })).status).toBe(200);
    const ready = await h.request('GET', '/readyz', { key: null });
    expect(ready.status).toBe(200);
    expect(ready.json.checks).toEqual({ accepting: true, database: true, nats: true });
    const metrics = await h.request('GET', '/metrics', { key: null });
    expect(metrics.text).toMatch(/wizard_upserts_total\{result="created",service="write-api"\} [1-9]/);
    expect(metrics.text).toContain('wizard_relay_backlog');
  });
});

describe('write-api rate limit and database outage', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('postgres', { RATE_LIMIT_PER_MIN: '5' });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('answers 429 with Retry-After once a key exceeds its per-minute limit, other keys unaffected', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await h.request('GET', sessionsPath(h.alice.teamId))).status);
    expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
    const limited = await h.request('GET', sessionsPath(h.alice.teamId));
    expect(limited.status).toBe(429);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.json.type).toBe('throttled_error');
    expect((await h.request('GET', sessionsPath(h.bob.teamId), { key: h.bob.apiKey })).status).toBe(200);
  });
});

describe('write-api while NATS is down', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('postgres');
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('stays ready and keeps committing writes, reporting NATS as down', async () => {
    await h.nats.stop();
    await until(async () => (await h.request('GET', '/readyz', { key: null })).json.checks.nats === false, {
      what: 'write-api noticing the NATS outage',
    });
    const ready = await h.request('GET', '/readyz', { key: null });
    expect(ready.status).toBe(200);
    expect(ready.json.checks).toEqual({ accepting: true, database: true, nats: false });
    expect(
      (await h.request('POST', sessionsPath(h.alice.teamId), { body: uniqueSessionBody() })).status,
    ).toBe(201);
    await h.nats.restart();
  });
});

describe('write-api with its database unreachable', () => {
  it('answers 503 with Retry-After, stays alive, and reports unready', async () => {
    const { freePort, NatsServer } = await import('@wizard-stream/testkit');
    const { startWriteApi, loadWriteApiConfig } = await import('../src/index.js');
    const nats = await NatsServer.start();
    const deadPort = await freePort();
    const api = await startWriteApi(
      loadWriteApiConfig({
        DATABASE_URL: `postgres://postgres@127.0.0.1:${deadPort}/nothing`,
        MIGRATE_ON_START: 'false',
        NATS_URL: nats.url,
        PORT: '0',
        LOG_LEVEL: 'silent',
      }),
    );
    try {
      const response = await fetch(`${api.url}/api/projects/1/wizard/sessions/`, {
        method: 'POST',
        // A well-formed key: only a lookup can tell it is unknown, and the lookup cannot run.
        headers: { authorization: `Bearer wsk_${'A'.repeat(43)}`, 'content-type': 'application/json' },
        body: JSON.stringify(uniqueSessionBody()),
      });
      expect(response.status).toBe(503);
      expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(apiErrorBodySchema.parse(await response.json()).code).toBe('service_unavailable');
      expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
      expect((await fetch(`${api.url}/readyz`)).status).toBe(503);
    } finally {
      await api.close();
      await nats.stop();
    }
  });
});
