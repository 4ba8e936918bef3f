import { ConfigError } from '@wizard-stream/contracts';
import { createApiKey, createUser, generateApiKey, type SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadWriteApiConfig, type RunningWriteApi, startWriteApi } from '../src/index.js';
import { SelectCounter } from './support/counting-plugin.js';
import {
  INTERNAL_API_TOKEN,
  seedTwoTeams,
  sessionBody,
  sessionsPath,
  writeApiEnv,
} from './support/write-api.js';

const AUTH_FAILURES_PER_MIN = 5;

/**
 * Which credential works where (docs/api.md#authentication): the internal token on the internal
 * listener only, query-string credentials for stream tokens on read calls only, canonical spellings
 * only, and failed authentication throttled per address before it costs a lookup.
 */
describe.each(DIALECTS)('credentials and where they work (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  let alice: SeededMember;
  let bob: SeededMember;
  const lookups = new SelectCounter('api_keys');
  let nextAddress = 1;

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    ({ alice, bob } = await seedTwoTeams(database, dialect));
    const env = writeApiEnv(nats.url, {
      AUTH_FAILURES_PER_MIN: String(AUTH_FAILURES_PER_MIN),
      AUTH_CACHE_MAX: '2',
      AUTH_CACHE_MS: '60000',
      RATE_LIMIT_PER_MIN: '100000',
    });
    // The same database, watched: every lookup of a key still runs on it.
    api = await startWriteApi(loadWriteApiConfig(env), {
      database: { ...database, db: database.db.withPlugin(lookups) },
    });
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await nats?.stop();
    await database?.dispose();
  });

  /** Each test comes from its own client address (the edge's X-Forwarded-For), so throttles never mix. */
  function client() {
    const address = `10.0.${dialect === 'postgres' ? 1 : 2}.${nextAddress++}`;
    return async (
      url: string,
      options: { method?: string; bearer?: string; body?: unknown } = {},
    ): Promise<Response> => {
      const headers: Record<string, string> = { 'x-forwarded-for': address };
      if (options.bearer) headers.authorization = `Bearer ${options.bearer}`;
      if (options.body !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(url, {
        method: options.method ?? 'GET',
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
      });
      await response.clone().arrayBuffer();
      return response;
    };
  }

  /** A request from an address of its own: for checks that refuse many credentials in a row. */
  const fresh = (url: string, options: Parameters<ReturnType<typeof client>>[1] = {}) =>
    client()(url, options);

  const list = (base: string, teamId: number, query = '') =>
    `${base}${sessionsPath(teamId)}?workflow_id=w${query}`;
  const latest = (base: string, teamId: number, query = '') =>
    `${base}${sessionsPath(teamId)}latest/?workflow_id=w${query}`;

  async function mintToken(request: ReturnType<typeof client>, member: SeededMember): Promise<string> {
    const response = await request(`${api.url}/api/projects/${member.teamId}/wizard/stream_tokens/`, {
      method: 'POST',
      bearer: member.apiKey,
    });
    expect(response.status).toBe(201);
    return ((await response.json()) as { token: string }).token;
  }

  describe('the internal token', () => {
    it('is refused by the public listener, as Bearer and as ?token=', async () => {
      const request = fresh;
      for (const teamId of [alice.teamId, bob.teamId]) {
        expect((await request(list(api.url, teamId), { bearer: INTERNAL_API_TOKEN })).status).toBe(401);
        expect((await request(latest(api.url, teamId), { bearer: INTERNAL_API_TOKEN })).status).toBe(401);
        const query = `&token=${encodeURIComponent(INTERNAL_API_TOKEN)}`;
        expect((await request(list(api.url, teamId, query))).status).toBe(401);
        expect((await request(latest(api.url, teamId, query))).status).toBe(401);
      }
    });

    it('reads any team on the internal listener, from the Authorization header only', async () => {
      const internal = api.internalUrl as string;
      expect(internal).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(new URL(internal).port).not.toBe(new URL(api.url).port);
      const request = client();
      await request(`${api.url}${sessionsPath(bob.teamId)}`, {
        method: 'POST',
        bearer: bob.apiKey,
        body: sessionBody('internal-read', { workflow_id: 'w' }),
      });
      for (const teamId of [alice.teamId, bob.teamId]) {
        expect((await request(list(internal, teamId), { bearer: INTERNAL_API_TOKEN })).status).toBe(200);
      }
      const bobs = await request(latest(internal, bob.teamId), { bearer: INTERNAL_API_TOKEN });
      expect(bobs.status).toBe(200);
      expect(((await bobs.json()) as { session_id: string }).session_id).toBe('internal-read');
      expect((await request(latest(internal, alice.teamId), { bearer: INTERNAL_API_TOKEN })).status).toBe(
        204,
      );
      // Never from the query string, and no public credential works there.
      const query = `&token=${encodeURIComponent(INTERNAL_API_TOKEN)}`;
      expect((await fresh(list(internal, bob.teamId, query))).status).toBe(401);
      expect((await fresh(list(internal, bob.teamId), { bearer: bob.apiKey })).status).toBe(401);
      expect((await fresh(list(internal, bob.teamId))).status).toBe(401);
    });

    it('serves nothing but the list and latest calls on the internal listener', async () => {
      const internal = api.internalUrl as string;
      const request = client();
      const refused = [
        request(`${internal}${sessionsPath(bob.teamId)}`, {
          method: 'POST',
          bearer: INTERNAL_API_TOKEN,
          body: sessionBody('never-written'),
        }),
        request(`${internal}${sessionsPath(bob.teamId)}internal-read/`, { bearer: INTERNAL_API_TOKEN }),
        request(`${internal}/api/projects/${bob.teamId}/wizard/stream_tokens/`, {
          method: 'POST',
          bearer: INTERNAL_API_TOKEN,
        }),
        request(`${internal}/api/personal_api_keys/`, { bearer: INTERNAL_API_TOKEN }),
        request(`${internal}/api/projects/${bob.teamId}/wizard_sessions/?workflow_id=w`, {
          bearer: INTERNAL_API_TOKEN,
        }),
        request(`${internal}/metrics`),
      ];
      for (const response of await Promise.all(refused)) expect(response.status).toBe(404);
      const written = await database.db
        .selectFrom('wizard_sessions')
        .select('session_id')
        .where('session_id', '=', 'never-written')
        .execute();
      expect(written).toEqual([]);
    });

    it('needs INTERNAL_API_TOKEN for INTERNAL_PORT', () => {
      expect(() => loadWriteApiConfig({ INTERNAL_PORT: '8002' })).toThrow(ConfigError);
      expect(() => loadWriteApiConfig({ INTERNAL_PORT: '8002' })).toThrow(/INTERNAL_PORT=8002/);
      expect(loadWriteApiConfig({}).internalPort).toBeUndefined();
    });
  });

  describe('query-string credentials', () => {
    it('are taken for stream tokens on read calls only: an API key in ?token= is no credential', async () => {
      const request = client();
      const key = `token=${encodeURIComponent(alice.apiKey)}`;
      const created = await request(`${api.url}${sessionsPath(alice.teamId)}?${key}`, {
        method: 'POST',
        body: sessionBody('query-key-push'),
      });
      expect(created.status).toBe(401);
      expect((await request(list(api.url, alice.teamId, `&${key}`))).status).toBe(401);
      expect(
        (
          await request(`${api.url}/api/projects/${alice.teamId}/wizard/stream_tokens/?${key}`, {
            method: 'POST',
          })
        ).status,
      ).toBe(401);

      const token = await mintToken(request, alice);
      expect((await request(list(api.url, alice.teamId, `&token=${token}`))).status).toBe(200);
      // A stream token in the query of a write call counts as no credential either.
      const pushed = await request(`${api.url}${sessionsPath(alice.teamId)}?token=${token}`, {
        method: 'POST',
        body: sessionBody('query-token-push'),
      });
      expect(pushed.status).toBe(401);
      const rows = await database.db
        .selectFrom('wizard_sessions')
        .select('session_id')
        .where('session_id', 'in', ['query-key-push', 'query-token-push'])
        .execute();
      expect(rows).toEqual([]);
    });
  });

  describe('canonical credentials', () => {
    it('refuse every other spelling of a valid stream token or key', async () => {
      const request = client();
      const token = await mintToken(request, alice);
      expect((await request(list(api.url, alice.teamId), { bearer: token })).status).toBe(200);
      const [claims, mac] = token.slice('wst_'.length).split('.') as [string, string];
      const respelled = [
        `${token}=`,
        `${token}==`,
        `${token}A`,
        `${token}.`,
        `wst_${claims}=.${mac}`,
        `wst_${claims}.${mac}.x`,
        `${alice.apiKey}=`,
        `${alice.apiKey}A`,
        alice.apiKey.slice(0, -1),
      ];
      for (const credential of respelled) {
        const response = await fresh(list(api.url, alice.teamId), { bearer: credential });
        expect(response.status, credential).toBe(401);
      }
      // The trailing character of a 32-byte base64url string carries 2 unused bits: another letter that
      // decodes to the same bytes is not the token.
      const last = mac.at(-1) as string;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
      const sameBytes = alphabet[
        (alphabet.indexOf(last) & ~3) | ((alphabet.indexOf(last) + 1) & 3)
      ] as string;
      const twin = `wst_${claims}.${mac.slice(0, -1)}${sameBytes}`;
      expect(Buffer.from(twin.split('.')[1] as string, 'base64url')).toEqual(Buffer.from(mac, 'base64url'));
      expect((await fresh(list(api.url, alice.teamId), { bearer: twin })).status).toBe(401);
    });
  });

  describe('failed authentication', () => {
    it('is throttled per address past AUTH_FAILURES_PER_MIN, and refusals past it cost no query', async () => {
      const guesser = client();
      const before = lookups.count;
      for (let attempt = 0; attempt < AUTH_FAILURES_PER_MIN; attempt++) {
        const response = await guesser(list(api.url, alice.teamId), { bearer: generateApiKey() });
        expect(response.status).toBe(401);
      }
      // Random well-formed keys are looked up: the counter sees the database work.
      expect(lookups.count - before).toBe(AUTH_FAILURES_PER_MIN);

      const throttledAt = lookups.count;
      for (let attempt = 0; attempt < 50; attempt++) {
        const response = await guesser(list(api.url, alice.teamId), { bearer: generateApiKey() });
        expect(response.status).toBe(429);
        const retryAfter = Number(response.headers.get('retry-after'));
        expect(retryAfter).toBeGreaterThan(0);
        expect(retryAfter).toBeLessThanOrEqual(60);
      }
      // A valid key from that address waits too: the throttle runs before any lookup.
      expect((await guesser(list(api.url, alice.teamId), { bearer: alice.apiKey })).status).toBe(429);
      expect(lookups.count).toBe(throttledAt);

      // Another address is untouched.
      expect((await client()(list(api.url, alice.teamId), { bearer: alice.apiKey })).status).toBe(200);
    });

    it('costs no query at all when the credential has no shape the API issues', async () => {
      const request = client();
      const before = lookups.count;
      for (const credential of ['wsk_short', INTERNAL_API_TOKEN, 'phx_someone-elses-key', 'x'.repeat(400)]) {
        expect((await request(list(api.url, alice.teamId), { bearer: credential })).status).toBe(401);
      }
      expect(lookups.count).toBe(before);
    });
  });

  describe('the auth cache', () => {
    it('is a bounded LRU (AUTH_CACHE_MAX=2): the least recently used lookup goes first', async () => {
      const request = client();
      const carolId = await createUser(database.db, `carol-${dialect}@example.test`, 'Carol');
      const { key: carol } = await createApiKey(database.db, carolId, ['wizard_session:read']);
      const cost = async (key: string, teamId: number) => {
        const before = lookups.count;
        await request(list(api.url, teamId), { bearer: key });
        return lookups.count - before;
      };
      // Fresh entries for this test: another test may have cached alice or bob already.
      expect(await cost(carol, alice.teamId)).toBe(1); // cached: carol
      expect(await cost(alice.apiKey, bob.teamId)).toBe(1); // carol, alice@2
      expect(await cost(carol, alice.teamId)).toBe(0); // alice@2, carol
      expect(await cost(bob.apiKey, alice.teamId)).toBe(1); // carol, bob@1 (alice@2 evicted)
      expect(await cost(carol, alice.teamId)).toBe(0); // bob@1, carol
      expect(await cost(alice.apiKey, bob.teamId)).toBe(1); // evicted above: looked up again
    });
  });
});
