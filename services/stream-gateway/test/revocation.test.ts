import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { personalApiKeysUrl, SCOPES, streamTokensUrl } from '@wizard-stream/contracts';
import { addTeamMember, createApiKey, createUser, type SeededMember } from '@wizard-stream/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { openAndRead, openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

const run = promisify(execFile);
const ADMIN_CLI = join(dirname(fileURLToPath(import.meta.url)), '../../write-api/src/admin/cli.ts');
/** The contract: a revoked credential's streams end within this long on every gateway. */
const END_WITHIN_MS = 10_000;

const ended = (stream: SseStream) => stream.events.some((event) => event.event === 'end');

/**
 * Revocation reaches live streams (docs/delivery.md#revocation): write-api announces it on NATS and
 * every gateway ends the streams the revoked key, its stream tokens, or a removed member opened.
 */
describe('revocation of live streams on two gateways (postgres)', () => {
  let stack: TestStack;
  let gateways: [RunningStreamGateway, RunningStreamGateway];
  let team: SeededMember;
  let otherTeam: SeededMember;
  let admin: string;
  const streams: SseStream[] = [];

  beforeAll(async () => {
    stack = await TestStack.start('postgres');
    [team, otherTeam] = stack.teams;
    admin = (await createApiKey(stack.database.db, team.userId, Object.values(SCOPES), 'admin')).key;
    gateways = [await stack.startGateway(), await stack.startGateway()];
  }, 60_000);

  afterAll(async () => {
    for (const stream of streams) stream.close();
    await stack?.close();
  }, 30_000);

  async function open(
    gateway: RunningStreamGateway,
    teamId: number,
    headers: Record<string, string>,
    query = '',
  ) {
    const stream = await openStream(`${stack.streamUrl(gateway.url, teamId, 'wf-revoke')}${query}`, headers);
    streams.push(stream);
    // The head is written after write-api named the credential's owner: from here on it can be revoked.
    expect(stream.status).toBe(200);
    return stream;
  }

  async function mint(teamId: number, key: string): Promise<string> {
    const response = await fetch(streamTokensUrl(stack.writeApi.url, teamId), {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(response.status).toBe(201);
    return ((await response.json()) as { token: string }).token;
  }

  async function newKey(scopes: string[]): Promise<{ id: number; value: string }> {
    const response = await fetch(personalApiKeysUrl(stack.writeApi.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ label: 'revoked soon', scopes }),
    });
    expect(response.status).toBe(201);
    return (await response.json()) as { id: number; value: string };
  }

  it('ends the streams of a key revoked through the API, and of its stream tokens, on both gateways', async () => {
    const [one, two] = gateways;
    const victim = await newKey([SCOPES.read]);
    const token = await mint(team.teamId, victim.value);
    const byKey = await open(one, team.teamId, { authorization: `Bearer ${victim.value}` });
    const byToken = await open(two, team.teamId, {}, `&token=${token}`);
    // The same user's other key, and another team: untouched.
    const sameUser = await open(one, team.teamId, { authorization: `Bearer ${team.apiKey}` });
    const otherTeamStream = await open(two, otherTeam.teamId, {
      authorization: `Bearer ${otherTeam.apiKey}`,
    });

    const deleted = await fetch(personalApiKeysUrl(stack.writeApi.url, victim.id), {
      method: 'DELETE',
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(deleted.status).toBe(204);
    for (const stream of [byKey, byToken]) {
      await stream.waitFor(() => ended(stream) && stream.closed, {
        timeoutMs: END_WITHIN_MS,
        what: 'event: end on the revoked stream',
      });
    }
    // Nothing else ended: both keep receiving.
    await stack.upsert(team, { sessionId: 'after-revoke', workflowId: 'wf-revoke', skillId: 's' });
    await stack.upsert(otherTeam, { sessionId: 'after-revoke', workflowId: 'wf-revoke', skillId: 's' });
    for (const stream of [sameUser, otherTeamStream]) {
      await stream.waitFor(() => stream.latestVersion('after-revoke') === 1, { what: 'the update after' });
      expect(ended(stream)).toBe(false);
    }
    // Reconnecting with the token or the key is refused on both gateways.
    for (const gateway of gateways) {
      const url = stack.streamUrl(gateway.url, team.teamId, 'wf-revoke');
      expect((await openAndRead(`${url}&token=${token}`)).status).toBe(401);
      expect((await openAndRead(url, { authorization: `Bearer ${victim.value}` })).status).toBe(401);
    }
  }, 30_000);

  it('ends a removed member’s streams when the admin CLI removes them (PostgreSQL + NATS_URL)', async () => {
    const email = `leaver-${Date.now()}@example.test`;
    const userId = await createUser(stack.database.db, email, 'Leaver');
    await addTeamMember(stack.database.db, team.teamId, userId);
    const { key } = await createApiKey(stack.database.db, userId, [SCOPES.read]);
    const token = await mint(team.teamId, key);
    const leaving = [
      await open(gateways[0], team.teamId, { authorization: `Bearer ${key}` }),
      await open(gateways[1], team.teamId, {}, `&token=${token}`),
    ];
    const staying = await open(gateways[1], team.teamId, { authorization: `Bearer ${team.apiKey}` });

    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', ADMIN_CLI, 'remove-member', '--team', String(team.teamId), '--email', email],
      { env: { ...process.env, DATABASE_URL: stack.database.url, NATS_URL: stack.nats.url } },
    );
    expect(stdout).toContain('the gateways were told');
    for (const stream of leaving) {
      await stream.waitFor(() => ended(stream) && stream.closed, {
        timeoutMs: END_WITHIN_MS,
        what: 'event: end on the removed member’s stream',
      });
    }
    expect(ended(staying)).toBe(false);
  }, 30_000);

  it('ends the streams of a key revoked with the admin CLI', async () => {
    const { id, key } = await createApiKey(stack.database.db, team.userId, [SCOPES.read]);
    const stream = await open(gateways[0], team.teamId, { authorization: `Bearer ${key}` });
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', ADMIN_CLI, 'revoke-key', '--id', String(id)],
      {
        env: { ...process.env, DATABASE_URL: stack.database.url, NATS_URL: stack.nats.url },
      },
    );
    expect(stdout).toContain(`key ${id} revoked; the gateways were told`);
    await stream.waitFor(() => ended(stream) && stream.closed, {
      timeoutMs: END_WITHIN_MS,
      what: 'event: end on the stream of the revoked key',
    });
  }, 30_000);
});
