import {
  addTeamMember,
  createApiKey,
  createUser,
  type Database,
  type DialectName,
  seedTeamWithMember,
} from '@wizard-stream/db';
import { createTestDatabase, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import { loadWriteApiConfig, type RunningWriteApi, startWriteApi } from '../src/index.js';

export const INTERNAL_TOKEN = 'internal-test-token-0123456789';

export interface Member {
  teamId: number;
  userId: number;
  apiKey: string;
}

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

/** A write-api on a fresh database of the given dialect and its own nats-server, with two teams. */
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
  const config = loadWriteApiConfig({
    NATS_URL: nats.url,
    PORT: '0',
    LOG_LEVEL: 'silent',
    INTERNAL_API_TOKEN: INTERNAL_TOKEN,
    STREAM_TOKEN_SECRET: 'stream-token-secret-for-tests',
    RATE_LIMIT_PER_MIN: '100000',
    ...env,
  });
  const api = await startWriteApi(config, { database });
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
export function sessionBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  counter += 1;
  return {
    session_id: `posthog-integration-nextjs-2026-11-25T10:00:${String(counter).padStart(2, '0')}Z-${counter}`,
    workflow_id: 'posthog-integration',
    skill_id: 'nextjs',
    started_at: '2026-11-25T10:00:00Z',
    run_phase: 'running',
    tasks: [{ id: '0', title: 'Install the SDK', status: 'in_progress' }],
    timestamp: new Date().toISOString(),
    ...overrides,
  };
}

export const sessionsPath = (teamId: number) => `/api/projects/${teamId}/wizard/sessions/`;
