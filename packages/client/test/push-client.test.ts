import { afterEach, describe, expect, it } from 'vitest';
import { createPushClient, WizardApiError, WizardNetworkError } from '../src/index.js';
import {
  json,
  recordingSleep,
  sequence,
  sessionDto,
  startTestServer,
  type TestServer,
} from './support/test-server.js';

const body = {
  session_id: 's1',
  workflow_id: 'wf',
  skill_id: 'skill',
  started_at: new Date().toISOString(),
  run_phase: 'running' as const,
  tasks: [{ id: 't1', title: 'Install SDK', status: 'in_progress' as const }],
};

const errorBody = (code: string, detail: string, attr: string | null = null) => ({
  type: 'validation_error',
  code,
  detail,
  attr,
});

let server: TestServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

describe('push client', () => {
  it('retries a 503 after the Retry-After seconds and returns the parsed session', async () => {
    server = await startTestServer((_req, res, index) => {
      if (index === 0)
        json(res, 503, errorBody('service_unavailable', 'database down'), { 'Retry-After': '3' });
      else json(res, 201, sessionDto());
    });
    const delays: number[] = [];
    const client = createPushClient({
      baseUrl: server.url,
      projectId: 7,
      apiKey: 'wsk_test',
      sleep: recordingSleep(delays),
    });
    const session = await client.upsert(body);
    expect(session.session_id).toBe('s1');
    expect(session.version).toBe(1);
    expect(server.requests).toHaveLength(2);
    expect(delays).toEqual([3000]);
    const [first] = server.requests;
    expect(first?.method).toBe('POST');
    expect(first?.url).toBe('/api/projects/7/wizard/sessions/');
    expect(first?.headers.authorization).toBe('Bearer wsk_test');
    expect(JSON.parse(first?.body ?? '')).toEqual(body);
  });

  it('honours a Retry-After HTTP date on 429', async () => {
    const retryAt = new Date(Date.now() + 30_000);
    server = await startTestServer((_req, res, index) => {
      if (index === 0)
        json(res, 429, errorBody('throttled', 'slow down'), { 'Retry-After': retryAt.toUTCString() });
      else json(res, 200, sessionDto({ version: 2 }));
    });
    const delays: number[] = [];
    const client = createPushClient({
      baseUrl: server.url,
      projectId: 1,
      apiKey: 'k',
      sleep: recordingSleep(delays),
    });
    expect((await client.upsert(body)).version).toBe(2);
    expect(delays).toHaveLength(1);
    // HTTP dates have one-second resolution.
    expect(delays[0]).toBeGreaterThan(27_000);
    expect(delays[0]).toBeLessThanOrEqual(30_000);
  });

  it('waits out Retry-After in real time before the next attempt', async () => {
    server = await startTestServer((_req, res, index) => {
      if (index === 0) json(res, 503, errorBody('service_unavailable', 'busy'), { 'Retry-After': '1' });
      else json(res, 200, sessionDto());
    });
    const client = createPushClient({ baseUrl: server.url, projectId: 1, apiKey: 'k' });
    await client.upsert(body);
    const [first, second] = server.requests;
    expect((second?.at ?? 0) - (first?.at ?? Number.POSITIVE_INFINITY)).toBeGreaterThanOrEqual(990);
  }, 10_000);

  it('never retries a 400 and surfaces the server error body', async () => {
    server = await startTestServer((_req, res) =>
      json(res, 400, errorBody('invalid_input', 'tasks__0__status: Invalid option', 'tasks__0__status')),
    );
    const client = createPushClient({
      baseUrl: server.url,
      projectId: 1,
      apiKey: 'k',
      sleep: recordingSleep([]),
    });
    const error = await client.upsert(body).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WizardApiError);
    const apiError = error as WizardApiError;
    expect(apiError.status).toBe(400);
    expect(apiError.code).toBe('invalid_input');
    expect(apiError.detail).toBe('tasks__0__status: Invalid option');
    expect(apiError.attr).toBe('tasks__0__status');
    expect(server.requests).toHaveLength(1);
  });

  it.each([401, 403, 404])('does not retry a %i', async (status) => {
    server = await startTestServer((_req, res) => json(res, status, errorBody('denied', `status ${status}`)));
    const client = createPushClient({
      baseUrl: server.url,
      projectId: 1,
      apiKey: 'k',
      sleep: recordingSleep([]),
    });
    await expect(client.upsert(body)).rejects.toMatchObject({ status, detail: `status ${status}` });
    expect(server.requests).toHaveLength(1);
  });

  it('backs off exponentially with full jitter on 5xx and gives up after maxAttempts', async () => {
    server = await startTestServer((_req, res) => json(res, 500, errorBody('error', 'boom')));
    const delays: number[] = [];
    const client = createPushClient({
      baseUrl: server.url,
      projectId: 1,
      apiKey: 'k',
      maxAttempts: 5,
      baseDelayMs: 100,
      maxDelayMs: 500,
      random: sequence(1, 0.5, 1, 0.25),
      sleep: recordingSleep(delays),
    });
    await expect(client.upsert(body)).rejects.toMatchObject({
      name: 'WizardApiError',
      status: 500,
      detail: 'boom',
    });
    expect(server.requests).toHaveLength(5);
    // Ceilings 100, 200, 400, 500 (capped), each scaled by the jitter draw.
    expect(delays).toEqual([100, 100, 400, 125]);
  });

  it('retries a connection reset and succeeds', async () => {
    server = await startTestServer((req, res, index) => {
      if (index === 0) res.socket?.destroy();
      else json(res, 200, sessionDto());
      void req;
    });
    const delays: number[] = [];
    const client = createPushClient({
      baseUrl: server.url,
      projectId: 1,
      apiKey: 'k',
      random: () => 0.5,
      baseDelayMs: 100,
      sleep: recordingSleep(delays),
    });
    await client.upsert(body);
    expect(server.requests).toHaveLength(2);
    expect(delays).toEqual([50]);
  });

  it('reports a network error once every attempt was refused', async () => {
    const closed = await startTestServer(() => {});
    const url = closed.url;
    await closed.close();
    const delays: number[] = [];
    const client = createPushClient({
      baseUrl: url,
      projectId: 1,
      apiKey: 'k',
      maxAttempts: 3,
      sleep: recordingSleep(delays),
    });
    const error = await client.upsert(body).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(WizardNetworkError);
    expect((error as WizardNetworkError).attempts).toBe(3);
    expect(delays).toHaveLength(2);
  });

  it('mints a stream token and reads the latest session', async () => {
    server = await startTestServer((req, res) => {
      if (req.url.includes('stream_tokens'))
        json(res, 201, { token: 'st_abc', expires_at: '2030-01-01T00:00:00.000Z' });
      else if (req.url.includes('skill_id=none')) {
        res.writeHead(204);
        res.end();
      } else json(res, 200, sessionDto({ version: 4 }));
    });
    const client = createPushClient({ baseUrl: server.url, projectId: 3, apiKey: 'k' });
    const token = await client.mintStreamToken();
    expect(token.token).toBe('st_abc');
    expect(token.expiresAt.toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect(server.requests[0]?.method).toBe('POST');
    expect(server.requests[0]?.url).toBe('/api/projects/3/wizard/stream_tokens/');
    expect((await client.latest('wf'))?.version).toBe(4);
    expect(server.requests[1]?.url).toBe('/api/projects/3/wizard/sessions/latest/?workflow_id=wf');
    expect(await client.latest('wf', 'none')).toBeNull();
  });

  it('reads a page of the list call with its links, and parses every session', async () => {
    server = await startTestServer((_req, res) =>
      json(res, 200, {
        count: 3,
        next: null,
        previous: 'http://api.test/api/projects/3/wizard/sessions/?workflow_id=wf&limit=2',
        results: [sessionDto({ session_id: 's3', version: 2 })],
      }),
    );
    const client = createPushClient({ baseUrl: server.url, projectId: 3, apiKey: 'k' });
    const page = await client.list({ workflowId: 'wf', skillId: 'nextjs', offset: 2, limit: 2 });
    expect(server.requests[0]?.method).toBe('GET');
    expect(server.requests[0]?.url).toBe(
      '/api/projects/3/wizard/sessions/?workflow_id=wf&skill_id=nextjs&limit=2&offset=2',
    );
    expect(server.requests[0]?.headers.authorization).toBe('Bearer k');
    expect(page.count).toBe(3);
    expect(page.next).toBeNull();
    expect(page.previous).toContain('limit=2');
    expect(page.results.map((session) => [session.session_id, session.version])).toEqual([['s3', 2]]);
  });

  it('refuses a list response that is not a page of sessions', async () => {
    server = await startTestServer((req, res) => {
      if (req.url.includes('workflow_id=bare')) json(res, 200, [sessionDto()]);
      else json(res, 200, { count: 1, next: null, previous: null, results: [{ session_id: 's1' }] });
    });
    const client = createPushClient({ baseUrl: server.url, projectId: 3, apiKey: 'k' });
    await expect(client.list({ workflowId: 'bare' })).rejects.toThrow(/session list response is malformed/);
    await expect(client.list({ workflowId: 'wf' })).rejects.toThrow(/version/);
    expect(server.requests[1]?.url).toBe('/api/projects/3/wizard/sessions/?workflow_id=wf');
  });
});
