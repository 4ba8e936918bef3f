import { CONNECTS_HEADER, CONNECTS_SIGNATURE_HEADER } from '@wizard-stream/contracts';
import type { SeededMember } from '@wizard-stream/db';
import { signConnects } from '@wizard-stream/http';
import { createTestDatabase, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import {
  INTERNAL_API_TOKEN,
  postSession,
  seedMember,
  sessionBody,
  sessionsPath,
  startTestWriteApi,
} from './support/write-api.js';

const RATE_LIMIT_PER_MIN = 20;

/**
 * A gateway's snapshot call is charged the connects it carries (CONNECTS_HEADER), but only when the
 * gateway signed the count with INTERNAL_API_TOKEN: a browser holding a stream token must not be able to
 * spend the whole budget of the key that minted it (docs/api.md#authentication).
 */
describe('connects charged to a key', () => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  let member: SeededMember;
  let token: string;

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase('postgres'), NatsServer.start()]);
    api = await startTestWriteApi(database, nats.url, { RATE_LIMIT_PER_MIN: String(RATE_LIMIT_PER_MIN) });
    member = await seedMember(database);
    const minted = await fetch(`${api.url}/api/projects/${member.teamId}/wizard/stream_tokens/`, {
      method: 'POST',
      headers: { authorization: `Bearer ${member.apiKey}` },
    });
    expect(minted.status).toBe(201);
    token = ((await minted.json()) as { token: string }).token;
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await nats?.stop();
    await database?.dispose();
  });

  const latest = (headers: Record<string, string>) =>
    fetch(`${api.url}${sessionsPath(member.teamId)}latest/?workflow_id=w`, {
      headers: { authorization: `Bearer ${token}`, ...headers },
    });

  it('charges an unsigned or wrongly signed count as one request: the key can still push', async () => {
    const connects = String(RATE_LIMIT_PER_MIN - 2);
    expect((await latest({ [CONNECTS_HEADER]: connects })).status).toBe(204);
    const forged = signConnects('not-the-internal-token-0123456789', RATE_LIMIT_PER_MIN - 2, token);
    expect((await latest({ [CONNECTS_HEADER]: connects, [CONNECTS_SIGNATURE_HEADER]: forged })).status).toBe(
      204,
    );
    // Another credential's signature does not carry over either.
    const otherCredential = signConnects(INTERNAL_API_TOKEN, RATE_LIMIT_PER_MIN - 2, member.apiKey);
    expect(
      (await latest({ [CONNECTS_HEADER]: connects, [CONNECTS_SIGNATURE_HEADER]: otherCredential })).status,
    ).toBe(204);
    expect((await postSession(api.url, member, sessionBody('still-pushing'))).status).toBe(201);
  });

  it("charges a gateway's signed count in full: the key's budget is spent", async () => {
    const signed = signConnects(INTERNAL_API_TOKEN, RATE_LIMIT_PER_MIN, token);
    const answer = await latest({
      [CONNECTS_HEADER]: String(RATE_LIMIT_PER_MIN),
      [CONNECTS_SIGNATURE_HEADER]: signed,
    });
    expect(answer.status).toBe(429);
    expect(answer.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
  });
});
