import {
  apiErrorBodySchema,
  MAX_BODY_BYTES,
  MAX_BODY_NESTING,
  nestsDeeperThan,
  parseUpsertBody,
  SCOPES,
  sessionDtoSchema,
} from '@wizard-stream/contracts';
import { addTeamMember, createApiKey, createUser, type SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import { type BadRequest, badRequestArb } from './support/bad-requests.js';
import { seedMember, startTestWriteApi, waitUntilReady } from './support/write-api.js';

const RUNS = 1000;
const DOCUMENTED_STATUSES = new Set([200, 201, 400, 401, 403, 404, 405, 413, 415, 429]);
const JSON_CONTENT_TYPES = new Set(['application/json', 'application/json; charset=utf-8']);
/** Keys that Fastify's JSON parser refuses outright (prototype poisoning). */
const POISONED_KEY = /"(__proto__|constructor)"\s*:/;

function parsedJson(text: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch {
    return { ok: false };
  }
}

describe.each(DIALECTS)('hostile write requests (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  let writer: SeededMember;
  let outsider: SeededMember;
  let readerKey: string;

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    // Limits off: this test checks which status each request gets, not the throttles (credentials.test.ts).
    api = await startTestWriteApi(database, nats.url, {
      RATE_LIMIT_PER_MIN: '1000000',
      AUTH_FAILURES_PER_MIN: '1000000',
    });
    writer = await seedMember(database);
    outsider = await seedMember(database);
    const readerId = await createUser(database.db, `reader-${dialect}@example.test`, 'Reader');
    await addTeamMember(database.db, writer.teamId, readerId);
    readerKey = (await createApiKey(database.db, readerId, [SCOPES.read])).key;
    await waitUntilReady(api.url);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await nats?.stop();
    await database?.dispose();
  });

  function teamOf(request: BadRequest): string {
    if (request.project === 'own') return String(writer.teamId);
    if (request.project === 'outsiders') return String(outsider.teamId);
    return 'not-a-project';
  }

  function authorization(request: BadRequest): string | undefined {
    switch (request.credential) {
      case 'writer':
        return `Bearer ${writer.apiKey}`;
      case 'reader':
        return `Bearer ${readerKey}`;
      case 'outsider':
        return `Bearer ${outsider.apiKey}`;
      case 'garbage':
        return `Bearer ${request.garbageCredential}`;
      case 'basic':
        return `Basic ${Buffer.from(`user:${request.garbageCredential}`).toString('base64')}`;
      case 'missing':
        return undefined;
    }
  }

  /**
   * What the API must answer for a well-formed JSON POST, from the documented check order: the body
   * is parsed first, then credentials (401), membership (404), scope (403), then the body schema.
   * Undefined where the request is odd enough that only "a documented status" is promised.
   */
  function expectedStatuses(request: BadRequest): number[] | undefined {
    // Fastify reads the body before routing to the 405 handler, so a bad body may win.
    if (request.method !== 'POST') return [405, 400, 413, 415];
    if (Buffer.byteLength(request.body) > MAX_BODY_BYTES) return undefined;
    if (!request.contentType || !JSON_CONTENT_TYPES.has(request.contentType)) return undefined;
    const json = parsedJson(request.body);
    if (!json.ok || POISONED_KEY.test(request.body)) return [400];
    const badCredential = ['missing', 'garbage', 'basic'].includes(request.credential);
    // A non-numeric project id is a URL that names nothing; it may be refused before the credential.
    if (request.project === 'garbage') return badCredential ? [401, 404] : [404];
    if (badCredential) return [401];
    const member = request.credential === 'outsider' ? 'outsiders' : 'own';
    if (request.project !== member) return [404];
    if (request.credential === 'reader') return [403];
    // Nesting that would overflow a recursive walk is refused (and would overflow this oracle too).
    if (nestsDeeperThan(json.value, MAX_BODY_NESTING)) return [400];
    try {
      parseUpsertBody(json.value, request.body);
    } catch {
      return [400];
    }
    return [200, 201];
  }

  it(`answers ${RUNS} random and mutated requests with documented statuses and never writes a partial row`, async () => {
    /** The newest accepted DTO per team and session_id: what each stored row must equal afterwards. */
    const accepted = new Map<string, { version: number; text: string }>();
    const statusCounts = new Map<number, number>();

    await fc.assert(
      fc.asyncProperty(badRequestArb, async (request) => {
        const headers: Record<string, string> = {};
        const credential = authorization(request);
        if (credential !== undefined) headers.authorization = credential;
        if (request.contentType !== undefined) headers['content-type'] = request.contentType;
        const collection = request.alias ? 'wizard_sessions' : 'wizard/sessions';
        const response = await fetch(`${api.url}/api/projects/${teamOf(request)}/${collection}/`, {
          method: request.method,
          headers,
          // Bytes, so that fetch adds no content-type of its own.
          body: Buffer.from(request.body, 'utf8'),
        });
        const text = await response.text();
        statusCounts.set(response.status, (statusCounts.get(response.status) ?? 0) + 1);

        expect(DOCUMENTED_STATUSES.has(response.status), `status ${response.status}: ${text}`).toBe(true);
        const expected = expectedStatuses(request);
        if (expected) expect(expected, `status ${response.status}: ${text}`).toContain(response.status);
        if (response.status >= 400) {
          expect(apiErrorBodySchema.safeParse(JSON.parse(text)).success, text).toBe(true);
          return;
        }
        const dto = sessionDtoSchema.parse(JSON.parse(text));
        const key = JSON.stringify([dto.team_id, dto.session_id]);
        const previous = accepted.get(key);
        if (!previous || previous.version < dto.version) accepted.set(key, { version: dto.version, text });
      }),
      { numRuns: RUNS },
    );

    // The process is still up and serving.
    expect((await fetch(`${api.url}/healthz`)).status).toBe(200);
    // Some inputs got through, so the final check covers real rows, not an empty table.
    expect(accepted.size).toBeGreaterThan(0);
    expect((statusCounts.get(400) ?? 0) + (statusCounts.get(413) ?? 0)).toBeGreaterThan(0);

    const rows = await database.db
      .selectFrom('wizard_sessions')
      .select(['team_id', 'session_id', 'version'])
      .execute();
    expect(rows).toHaveLength(accepted.size);
    for (const member of [writer, outsider]) {
      const stored = new Map<string, unknown>();
      for (let offset = 0; ; offset += 200) {
        const response = await fetch(
          `${api.url}/api/projects/${member.teamId}/wizard/sessions/?limit=200&offset=${offset}`,
          { headers: { authorization: `Bearer ${member.apiKey}` } },
        );
        expect(response.status).toBe(200);
        const page = (await response.json()) as { results: unknown[]; next: string | null };
        for (const item of page.results) {
          const dto = sessionDtoSchema.parse(item);
          stored.set(JSON.stringify([dto.team_id, dto.session_id]), item);
        }
        if (!page.next) break;
      }
      for (const [key, item] of stored) {
        // Every stored row is exactly the newest accepted push of its session, field for field.
        expect(accepted.get(key)?.text, key).toBe(JSON.stringify(item));
      }
      const acceptedForTeam = [...accepted.keys()].filter((key) => JSON.parse(key)[0] === member.teamId);
      expect(stored.size).toBe(acceptedForTeam.length);
    }
  }, 240_000);
});
