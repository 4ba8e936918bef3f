import { type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import { type TestDatabase, until } from '@wizard-stream/testkit';
import {
  loadWriteApiConfig,
  type RunningWriteApi,
  type StartOptions,
  startWriteApi,
} from '../../src/index.js';

export const INTERNAL_API_TOKEN = 'internal-token-for-tests-0123456789';

/** The environment a test write-api runs with; NATS_URL and overrides come from the test. */
export function writeApiEnv(natsUrl: string, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    NATS_URL: natsUrl,
    PORT: '0',
    LOG_LEVEL: 'silent',
    INTERNAL_API_TOKEN,
    INTERNAL_PORT: '0',
    STREAM_TOKEN_SECRET: 'stream-token-secret-for-tests',
    MIGRATE_ON_START: '0',
    ...overrides,
  };
}

/** An in-process write-api on a test database (the test closes it; the database stays open). */
export function startTestWriteApi(
  database: TestDatabase,
  natsUrl: string,
  overrides: Record<string, string> = {},
  afterCommit?: StartOptions['afterCommit'],
): Promise<RunningWriteApi> {
  return startWriteApi(loadWriteApiConfig(writeApiEnv(natsUrl, overrides)), { database, afterCommit });
}

/** Alice in team one and Bob in team two, each with a read+write key; `tag` keeps emails unique. */
export async function seedTwoTeams(
  database: TestDatabase,
  tag: string,
): Promise<{ alice: SeededMember; bob: SeededMember }> {
  const alice = await seedTeamWithMember(database.db, {
    teamName: 'one',
    email: `alice-${tag}@example.test`,
  });
  const bob = await seedTeamWithMember(database.db, { teamName: 'two', email: `bob-${tag}@example.test` });
  return { alice, bob };
}

let seeded = 0;

/** A fresh team whose member holds a read+write key; unique emails so one database serves many. */
export function seedMember(database: TestDatabase): Promise<SeededMember> {
  seeded += 1;
  const tag = `${process.pid}-${Date.now()}-${seeded}`;
  return seedTeamWithMember(database.db, {
    teamName: `team ${tag}`,
    email: `user-${tag}@example.test`,
    firstName: 'Ada',
  });
}

/** A valid upsert body the way the CLI sends it (including its extra `timestamp` field). */
export function sessionBody(
  sessionId: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    session_id: sessionId,
    workflow_id: 'posthog-integration',
    skill_id: 'nextjs',
    started_at: '2026-01-02T03:04:05Z',
    run_phase: 'running',
    tasks: [{ id: '0', title: 'Install the SDK', status: 'in_progress' }],
    timestamp: new Date().toISOString(),
    ...overrides,
  };
}

export interface HttpResult {
  status: number;
  text: string;
  headers: Headers;
}

export function sessionsPath(teamId: number): string {
  return `/api/projects/${teamId}/wizard/sessions/`;
}

/** POSTs a session over a real socket and returns the raw response text (its exact bytes). */
export async function postSession(baseUrl: string, member: SeededMember, body: unknown): Promise<HttpResult> {
  const response = await fetch(`${baseUrl}${sessionsPath(member.teamId)}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${member.apiKey}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

export async function getSession(
  baseUrl: string,
  member: SeededMember,
  sessionId: string,
): Promise<HttpResult> {
  const response = await fetch(`${baseUrl}${sessionsPath(member.teamId)}${encodeURIComponent(sessionId)}/`, {
    headers: { authorization: `Bearer ${member.apiKey}` },
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

/** The stored version and publish marker of one session, read straight from the database. */
export async function storedVersions(
  database: TestDatabase,
  teamId: number,
  sessionId: string,
): Promise<{ version: number; published_version: number } | undefined> {
  return database.db
    .selectFrom('wizard_sessions')
    .select(['version', 'published_version'])
    .where('team_id', '=', teamId)
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
}

/**
 * Resolves once write-api's readiness body reports its NATS connection as up (or down): readiness
 * itself depends on the database only, the NATS state is reported alongside it.
 */
export async function waitForNats(baseUrl: string, connected = true): Promise<void> {
  await until(
    async () => {
      const response = await fetch(`${baseUrl}/readyz`);
      const body = (await response.json()) as { checks?: { nats?: boolean } };
      return body.checks?.nats === connected && (!connected || response.status === 200);
    },
    {
      timeoutMs: 10_000,
      what: `${baseUrl}/readyz to report NATS ${connected ? 'connected' : 'disconnected'}`,
    },
  );
}

/** Resolves once write-api is ready and connected to NATS, so that a first publish is not left to the relay. */
export function waitUntilReady(baseUrl: string): Promise<void> {
  return waitForNats(baseUrl, true);
}
