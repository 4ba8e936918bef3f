import { connect, type NatsConnection } from '@nats-io/transport-node';
import { apiErrorBodySchema, REVOCATIONS_SUBJECT, SCOPES } from '@wizard-stream/contracts';
import { createApiKey, removeTeamMember, type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, NatsServer, type TestDatabase, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import { MAX_KEYS_PER_USER } from '../src/keys/routes.js';
import { seedTwoTeams, sessionsPath, startTestWriteApi } from './support/write-api.js';

const ALL_SCOPES = Object.values(SCOPES);

describe.each(DIALECTS)('personal API keys over the API (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  /** A second replica on the same database, with its own auth cache. */
  let replica: RunningWriteApi;
  let watcher: NatsConnection;
  const revocations: Record<string, unknown>[] = [];
  let alice: SeededMember;
  let bob: SeededMember;
  /** Alice's key holding every scope, key management included. */
  let admin: { id: number; key: string };
  let bobAdmin: { id: number; key: string };

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    ({ alice, bob } = await seedTwoTeams(database, dialect));
    admin = await createApiKey(database.db, alice.userId, ALL_SCOPES, 'admin');
    bobAdmin = await createApiKey(database.db, bob.userId, ALL_SCOPES, 'admin');
    const env = { RATE_LIMIT_PER_MIN: '100000', AUTH_FAILURES_PER_MIN: '100000' };
    api = await startTestWriteApi(database, nats.url, env);
    replica = await startTestWriteApi(database, nats.url, { ...env, AUTH_CACHE_MS: '3000' });
    watcher = await connect({ servers: nats.url });
    watcher.subscribe(REVOCATIONS_SUBJECT, {
      callback: (_error, message) => {
        revocations.push(message.json());
      },
    });
    await watcher.flush();
    await api.app.services.bus.ready();
  }, 60_000);

  afterAll(async () => {
    await watcher?.close();
    await replica?.close();
    await api?.close();
    await nats?.stop();
    await database?.dispose();
  });

  async function call(
    method: string,
    path: string,
    key: string | undefined,
    body?: unknown,
    base = api.url,
    // biome-ignore lint/suspicious/noExplicitAny: responses are asserted field by field
  ): Promise<{ status: number; json: any; text: string }> {
    const headers: Record<string, string> = {};
    if (key) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const response = await fetch(`${base}${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, text, json: text ? JSON.parse(text) : undefined };
  }

  const keys = '/api/personal_api_keys/';

  async function mintToken(member: SeededMember, key: string): Promise<string> {
    const minted = await call('POST', `/api/projects/${member.teamId}/wizard/stream_tokens/`, key);
    expect(minted.status).toBe(201);
    return minted.json.token;
  }

  it('creates a key whose value is shown once, in the create response alone', async () => {
    const created = await call('POST', keys, admin.key, { label: 'ci reader', scopes: [SCOPES.read] });
    expect(created.status).toBe(201);
    expect(Object.keys(created.json)).toEqual([
      'id',
      'label',
      'value',
      'scopes',
      'created_at',
      'last_used_at',
    ]);
    expect(created.json).toMatchObject({ label: 'ci reader', scopes: [SCOPES.read], last_used_at: null });
    expect(created.json.value).toMatch(/^wsk_[A-Za-z0-9_-]{43}$/);
    expect(Number.isNaN(Date.parse(created.json.created_at))).toBe(false);

    // It works with exactly its scopes.
    const value: string = created.json.value;
    expect((await call('GET', `${sessionsPath(alice.teamId)}?workflow_id=w`, value)).status).toBe(200);
    const push = await call('POST', sessionsPath(alice.teamId), value, {});
    expect(push.status).toBe(403);

    const listed = await call('GET', keys, admin.key);
    expect(listed.status).toBe(200);
    expect(listed.text).not.toContain(value);
    expect(listed.text).not.toContain(admin.key);
    const entry = listed.json.find((key: { id: number }) => key.id === created.json.id);
    expect(Object.keys(entry)).toEqual(['id', 'label', 'scopes', 'created_at', 'last_used_at']);
    // The caller's own keys only.
    const ids = listed.json.map((key: { id: number }) => key.id);
    expect(ids).toContain(admin.id);
    expect(ids).not.toContain(bobAdmin.id);
  });

  it('grants only scopes the calling key holds, and manages keys only with the key scopes', async () => {
    const limited = await call('POST', keys, admin.key, {
      label: 'manager',
      scopes: [SCOPES.read, SCOPES.keysWrite],
    });
    expect(limited.status).toBe(201);
    const escalation = await call('POST', keys, limited.json.value, { scopes: [SCOPES.write] });
    expect(escalation.status).toBe(403);
    expect(escalation.json.detail).toContain(SCOPES.write);
    expect((await call('POST', keys, limited.json.value, { scopes: [SCOPES.read] })).status).toBe(201);
    // personal_api_key:read lists; the seeded read+write key has neither key scope.
    expect((await call('GET', keys, limited.json.value)).status).toBe(403);
    expect((await call('GET', keys, alice.apiKey)).status).toBe(403);
    expect((await call('POST', keys, alice.apiKey, { scopes: [SCOPES.read] })).status).toBe(403);
    expect((await call('DELETE', `${keys}${admin.id}/`, alice.apiKey)).status).toBe(403);
  });

  it('takes the key from the Authorization header only, never a stream token', async () => {
    expect((await call('GET', keys, undefined)).status).toBe(401);
    expect((await call('GET', `${keys}?token=${encodeURIComponent(admin.key)}`, undefined)).status).toBe(401);
    const token = await mintToken(alice, admin.key);
    expect((await call('GET', keys, token)).status).toBe(403);
    expect((await call('GET', `${keys}?token=${token}`, undefined)).status).toBe(401);
  });

  it('validates the create body with the documented 400', async () => {
    const cases: [unknown, string | null][] = [
      [{ scopes: ['nope'] }, 'scopes__0'],
      [{}, 'scopes'],
      [{ scopes: [] }, 'scopes'],
      [{ scopes: [SCOPES.read, SCOPES.read] }, 'scopes'],
      [{ scopes: [SCOPES.read], label: 'x'.repeat(41) }, 'label'],
      [{ scopes: SCOPES.read }, 'scopes'],
      [[], null],
    ];
    for (const [body, attr] of cases) {
      const response = await call('POST', keys, admin.key, body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(apiErrorBodySchema.parse(response.json)).toMatchObject({ code: 'invalid_input', attr });
    }
  });

  it(`holds at most ${MAX_KEYS_PER_USER} live keys per user`, async () => {
    const live = (await call('GET', keys, bobAdmin.key)).json.length as number;
    for (let index = live; index < MAX_KEYS_PER_USER; index++) {
      expect((await call('POST', keys, bobAdmin.key, { scopes: [SCOPES.read] })).status).toBe(201);
    }
    const over = await call('POST', keys, bobAdmin.key, { scopes: [SCOPES.read] });
    expect(over.status).toBe(400);
    expect(over.json.detail).toContain(String(MAX_KEYS_PER_USER));
  });

  it('deletes only the caller’s own keys: 204, then 404', async () => {
    const own = await call('POST', keys, admin.key, { scopes: [SCOPES.read] });
    expect((await call('DELETE', `${keys}${bobAdmin.id}/`, admin.key)).status).toBe(404);
    expect((await call('DELETE', `${keys}999999999/`, admin.key)).status).toBe(404);
    expect((await call('DELETE', `${keys}abc/`, admin.key)).status).toBe(404);
    const deleted = await call('DELETE', `${keys}${own.json.id}/`, admin.key);
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe('');
    expect((await call('DELETE', `${keys}${own.json.id}/`, admin.key)).status).toBe(404);
    expect((await call('GET', keys, bobAdmin.key)).json.map((key: { id: number }) => key.id)).toContain(
      bobAdmin.id,
    );
  });

  it('revokes the key, the stream tokens it minted and announces it to the gateways', async () => {
    const created = await call('POST', keys, admin.key, { scopes: [SCOPES.read, SCOPES.write] });
    const key: string = created.json.value;
    const token = await mintToken(alice, key);
    const read = `${sessionsPath(alice.teamId)}?workflow_id=w`;
    // Both replicas have the key and the token in their caches.
    for (const base of [api.url, replica.url]) {
      expect((await call('GET', read, key, undefined, base)).status).toBe(200);
      expect((await call('GET', read, token, undefined, base)).status).toBe(200);
    }

    expect((await call('DELETE', `${keys}${created.json.id}/`, admin.key)).status).toBe(204);
    // The replica that revoked it refuses both at once.
    expect((await call('GET', read, key)).status).toBe(401);
    const refused = await call('GET', read, token);
    expect(refused.status).toBe(401);
    expect(refused.json.detail).toContain('revoked');
    // The other replica within its AUTH_CACHE_MS, well under 10 s.
    await until(
      async () =>
        (await call('GET', read, token, undefined, replica.url)).status === 401 &&
        (await call('GET', read, key, undefined, replica.url)).status === 401,
      { timeoutMs: 10_000, what: 'the other replica to refuse the revoked key and its token' },
    );
    await until(() => revocations.some((message) => message.key_id === created.json.id), {
      timeoutMs: 5000,
      what: 'the revocation on NATS',
    });
    const message = revocations.find((entry) => entry.key_id === created.json.id);
    expect(message).toEqual({
      key_id: created.json.id,
      user_id: alice.userId,
      revoked_at: expect.any(String),
    });
  });

  it('ends a removed member’s stream tokens: 404 for the team they left', async () => {
    const member = await seedTeamWithMember(database.db, {
      teamName: 'three',
      email: `leaver-${dialect}@example.test`,
    });
    const token = await mintToken(member, member.apiKey);
    const read = `${sessionsPath(member.teamId)}?workflow_id=w`;
    expect((await call('GET', read, token, undefined, replica.url)).status).toBe(200);
    expect(await removeTeamMember(database.db, member.teamId, member.userId)).toBe(true);
    await until(async () => (await call('GET', read, token, undefined, replica.url)).status === 404, {
      timeoutMs: 10_000,
      what: 'the token of a removed member to stop reading the team',
    });
    expect((await call('GET', read, member.apiKey, undefined, replica.url)).status).toBe(404);
  });
});
