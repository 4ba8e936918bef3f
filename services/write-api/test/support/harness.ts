import {
  addTeamMember,
  createApiKey,
  createUser,
  type Database,
  type DialectName,
  type SeededMember,
  seedTeamWithMember,
} from '@wizard-stream/db';
import { createTestDatabase, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import type { RunningWriteApi } from '../../src/index.js';
import { sessionBody, startTestWriteApi } from './write-api.js';

export type Member = SeededMember;

export interface Harness {
  database: TestDatabase;
  nats: NatsServer;
  api: RunningWriteApi;
  /** Team 1's first member (read+write). */
  alice: Member;
  /** Another member of team 1 (read+write): may read alice's sessions but not push them. */
  carol: Member;
  /** Team 2's member. */
  bob: Member;
  /** Team 1 member with a read-only key. */
  reader: Member;
  request(method: string, path: string, options?: RequestOptions): Promise<ApiResponse>;
  close(): Promise<void>;
}

export interface RequestOptions {
  key?: string | null;
  body?: unknown;
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: test responses are asserted field by field
  json: any;
}

async function addMember(
  database: Database,
  teamId: number,
  email: string,
  scopes: ('wizard_session:read' | 'wizard_session:write')[],
): Promise<Member> {
  const userId = await createUser(database.db, email, email.split('@')[0]);
  await addTeamMember(database.db, teamId, userId);
  const { key } = await createApiKey(database.db, userId, scopes);
  return { teamId, userId, apiKey: key };
}

/**
 * A write-api on a fresh database of the given dialect and its own nats-server, with two teams and a
 * request helper: the harness of the API's parity tests.
 */
export async function startHarness(dialect: DialectName, env: Record<string, string> = {}): Promise<Harness> {
  const database = await createTestDatabase(dialect);
  const nats = await NatsServer.start();
  const alice = await seedTeamWithMember(database.db, {
    teamName: 'one',
    email: 'alice@example.com',
    firstName: 'Alice',
  });
  const bob = await seedTeamWithMember(database.db, {
    teamName: 'two',
    email: 'bob@example.com',
    firstName: 'Bob',
  });
  const carol = await addMember(database, alice.teamId, 'carol@example.com', [
    'wizard_session:read',
    'wizard_session:write',
  ]);
  const reader = await addMember(database, alice.teamId, 'reader@example.com', ['wizard_session:read']);
  const api = await startTestWriteApi(database, nats.url, { RATE_LIMIT_PER_MIN: '100000', ...env });
  const request = async (
    method: string,
    path: string,
    options: RequestOptions = {},
  ): Promise<ApiResponse> => {
    const headers: Record<string, string> = { ...options.headers };
    const key = options.key === undefined ? alice.apiKey : options.key;
    if (key) headers.authorization = `Bearer ${key}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${api.url}${path}`, { method, headers, body });
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  };
  return {
    database,
    nats,
    api,
    alice,
    bob,
    carol,
    reader,
    request,
    close: async () => {
      await api.close();
      await nats.stop();
      await database.dispose();
    },
  };
}

let counter = 0;

/** A valid upsert body, shaped like the wizard CLI's, with a unique session_id unless given. */
export function uniqueSessionBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  counter += 1;
  return sessionBody(
    `posthog-integration-nextjs-2026-11-25T10:00:${String(counter).padStart(2, '0')}Z-${counter}`,
    { started_at: '2026-11-25T10:00:00Z', ...overrides },
  );
}
