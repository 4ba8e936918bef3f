import { connect } from 'node:net';
import { apiErrorBodySchema, LIST_PAGE_MAX_BYTES, sessionDtoSchema } from '@wizard-stream/contracts';
import type { SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import {
  postSession,
  seedMember,
  sessionBody,
  sessionsPath,
  startTestWriteApi,
} from './support/write-api.js';

const REQUEST_TIMEOUT_MS = 1000;

describe.each(DIALECTS)('bounded requests and responses (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  let member: SeededMember;

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    api = await startTestWriteApi(database, nats.url, {
      REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      RATE_LIMIT_PER_MIN: '100000',
    });
    member = await seedMember(database);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await nats?.stop();
    await database?.dispose();
  });

  it('answers a trickled body with 408 and closes the connection once REQUEST_TIMEOUT_MS has passed', async () => {
    const { port } = new URL(api.url);
    const socket = connect({ host: '127.0.0.1', port: Number(port) });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `POST ${sessionsPath(member.teamId)} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${member.apiKey}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`,
    );
    // One byte every 50 ms keeps the socket busy, so only a whole-request deadline ends it.
    const trickle = setInterval(() => socket.writable && socket.write(' '), 50);
    const started = Date.now();
    let deadline: NodeJS.Timeout | undefined;
    try {
      const outcome = await Promise.race([
        closed.then(() => 'closed'),
        new Promise((resolve) => {
          deadline = setTimeout(resolve, 10_000, 'still open after 10 s');
        }),
      ]);
      expect(outcome).toBe('closed');
    } finally {
      clearTimeout(deadline);
      clearInterval(trickle);
      socket.destroy();
    }
    expect(Date.now() - started).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    const body = apiErrorBodySchema.parse(JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4)));
    expect(body.code).toBe('request_timeout');
  });

  it(`cuts a list page at ${LIST_PAGE_MAX_BYTES} bytes and continues it through next`, async () => {
    const workflowId = `big-rows-${dialect}`;
    const ids: string[] = [];
    for (let index = 0; index < 6; index++) {
      const sessionId = `big-${index}`;
      ids.push(sessionId);
      const response = await postSession(
        api.url,
        member,
        sessionBody(sessionId, {
          workflow_id: workflowId,
          started_at: `2026-01-0${index + 1}T00:00:00Z`,
          event_plan: { text: String(index).repeat(900_000) },
        }),
      );
      expect(response.status).toBe(201);
    }
    const seen: string[] = [];
    let url: string | null = `${api.url}${sessionsPath(member.teamId)}?workflow_id=${workflowId}&limit=200`;
    let pages = 0;
    while (url) {
      const response = await fetch(url, { headers: { authorization: `Bearer ${member.apiKey}` } });
      expect(response.status).toBe(200);
      const text = await response.text();
      expect(Buffer.byteLength(text)).toBeLessThanOrEqual(LIST_PAGE_MAX_BYTES + 1024);
      const page = JSON.parse(text) as { count: number; next: string | null; results: unknown[] };
      expect(page.count).toBe(6);
      expect(page.results.length).toBeGreaterThan(0);
      seen.push(...page.results.map((item) => sessionDtoSchema.parse(item).session_id));
      url = page.next;
      pages++;
    }
    expect(pages).toBeGreaterThan(1);
    // Newest started_at first, every session once across the pages.
    expect(seen).toEqual([...ids].reverse());
  }, 60_000);
});
