import { until } from '@wizard-stream/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { type CloseReason, poll, type Session, type Subscription, subscribe } from '../src/index.js';
import {
  json,
  recordingSleep,
  sequence,
  sessionDto,
  startTestServer,
  type TestServer,
} from './support/test-server.js';

let server: TestServer | undefined;
let subscription: Subscription | undefined;
afterEach(async () => {
  subscription?.close();
  await subscription?.closed;
  subscription = undefined;
  await server?.close();
  server = undefined;
});

const LATEST = '/api/projects/5/wizard/sessions/latest/?workflow_id=wf';

/** Answers each poll from a script (the last entry repeats), with the ETag of the version it serves. */
function scripted(answers: (Session | number)[]) {
  return startTestServer((request, response, index) => {
    const answer = answers[Math.min(index, answers.length - 1)] as Session | number;
    if (typeof answer === 'number') {
      if (answer === 204 || answer === 304) response.writeHead(answer).end();
      else json(response, answer, { type: 'x', code: `http_${answer}`, detail: 'scripted', attr: null });
      return;
    }
    const etag = `W/"${answer.version}.s1"`;
    if (request.headers['if-none-match'] === etag) response.writeHead(304, { etag }).end();
    else json(response, 200, answer, { etag });
  });
}

function follow(extra: Partial<Parameters<typeof poll>[0]> = {}) {
  const received: Session[] = [];
  const delays: number[] = [];
  subscription = poll({
    baseUrl: (server as TestServer).url,
    projectId: 5,
    workflowId: 'wf',
    credentials: { apiKey: 'wsk_key' },
    onSession: (session) => received.push(session),
    sleep: recordingSleep(delays),
    random: () => 0.5,
    ...extra,
  });
  return { received, delays };
}

describe('poll (the polling transport)', () => {
  it('polls latest every 3 s with the last ETag, its source and the credential, and delivers each version once', async () => {
    server = await scripted([
      sessionDto({ version: 1 }),
      sessionDto({ version: 1 }),
      sessionDto({ version: 2 }),
    ]);
    const { received, delays } = follow();
    await until(() => (server?.requests.length ?? 0) >= 4, { what: 'four polls' });
    expect(received.map((session) => session.version)).toEqual([1, 2]);
    const [first, second] = server.requests;
    expect(first?.url).toBe(LATEST);
    expect(first?.headers.authorization).toBe('Bearer wsk_key');
    expect(first?.headers['x-wizard-poll-source']).toBe('sdk');
    expect(first?.headers['if-none-match']).toBeUndefined();
    expect(second?.headers['if-none-match']).toBe('W/"1.s1"');
    expect(delays.slice(0, 3)).toEqual([3000, 3000, 3000]);
    expect(subscription?.state).toBe('open');
    expect(subscription?.polling).toBe(true);
    expect(subscription?.lastEventId).toBe('2:s1');
  });

  it('jitters by ±20 % and clamps the interval to 1–300 s', async () => {
    server = await scripted([204]);
    const low = follow({ intervalMs: 10, random: sequence(0, 0.999999, 0.5) });
    await until(() => low.delays.length >= 3, { what: 'three polls' });
    expect(low.delays.slice(0, 3)).toEqual([800, 1200, 1000]);
    subscription?.close();
    await subscription?.closed;
    const high = follow({ intervalMs: 10_000_000 });
    await until(() => high.delays.length >= 1, { what: 'a poll' });
    expect(high.delays[0]).toBe(300_000);
  });

  it('backs off to 60 s after 5 unchanged answers, and comes back to the interval on a change', async () => {
    const v1 = sessionDto({ version: 1 });
    server = await scripted([v1, 304, 304, 304, 304, 304, 304, sessionDto({ version: 2 }), 304]);
    const { delays, received } = follow();
    await until(() => delays.length >= 9, { what: 'nine polls' });
    // 1 change, then unchanged answers 1…5 (the fifth switches to 60 s), then the change resets.
    expect(delays.slice(0, 9)).toEqual([3000, 3000, 3000, 3000, 3000, 60_000, 60_000, 3000, 3000]);
    expect(received.map((session) => session.version)).toEqual([1, 2]);
  });

  it('backs off to 60 s on failures (or longer for a Retry-After), and recovers', async () => {
    server = await startTestServer((_request, response, index) => {
      if (index === 0)
        json(response, 503, { type: 'x', code: 'down', detail: 'd', attr: null }, { 'retry-after': '90' });
      else if (index === 1) response.destroy();
      else if (index === 2) json(response, 500, { type: 'x', code: 'bug', detail: 'd', attr: null });
      else json(response, 200, sessionDto({ version: 3 }));
    });
    const errors: unknown[] = [];
    const { delays, received } = follow({ onError: (error) => errors.push(error) });
    await until(() => received.length === 1 && delays.length >= 4, { what: 'recovery' });
    expect(delays.slice(0, 4)).toEqual([90_000, 60_000, 60_000, 3000]);
    expect(errors).toHaveLength(3);
  });

  for (const status of [401, 403, 404, 410]) {
    it(`stops for good on ${status}`, async () => {
      server = await scripted([sessionDto({ version: 1 }), status]);
      const { delays } = follow();
      const close = (await subscription?.closed) as CloseReason;
      expect(close.reason).toBe('rejected');
      expect(close.reason === 'rejected' && (close.error as { status?: number }).status).toBe(status);
      expect(server.requests).toHaveLength(2);
      expect(delays).toHaveLength(1);
      expect(subscription?.state).toBe('closed');
    });
  }

  it('retries a 401 once with a fresh token from getToken', async () => {
    let minted = 0;
    server = await startTestServer((request, response) => {
      if (request.headers.authorization === 'Bearer t1')
        json(response, 401, { type: 'x', code: 'expired', detail: 'd', attr: null });
      else json(response, 200, sessionDto({ version: 1 }));
    });
    const { received } = follow({ credentials: { getToken: async () => `t${++minted}` } });
    await until(() => received.length === 1, { what: 'a session' });
    const used = server.requests.map((request) => request.headers.authorization);
    expect(used.slice(0, 2)).toEqual(['Bearer t1', 'Bearer t2']);
    expect(minted).toBe(2);
  });
});

describe('subscribe with pollFallback', () => {
  it('switches to polling after SSE failed afterFailures times in a row', async () => {
    server = await startTestServer((request, response) => {
      if (request.url.includes('/stream/'))
        json(response, 502, { type: 'x', code: 'bad_gateway', detail: 'd', attr: null });
      else json(response, 200, sessionDto({ version: 4 }));
    });
    const received: Session[] = [];
    subscription = subscribe({
      baseUrl: server.url,
      projectId: 5,
      workflowId: 'wf',
      credentials: { apiKey: 'wsk_key' },
      onSession: (session) => received.push(session),
      sleep: recordingSleep([]),
      pollFallback: { afterFailures: 2, pollSource: 'transport' },
    });
    await until(() => received.length === 1, { what: 'a polled session' });
    const streams = server.requests.filter((request) => request.url.includes('/stream/'));
    expect(streams).toHaveLength(2);
    const polls = server.requests.filter((request) => request.url.includes('/latest/'));
    expect(polls[0]?.headers['x-wizard-poll-source']).toBe('transport');
    expect(subscription.polling).toBe(true);
  });

  it('switches to polling when the stream is killswitched (204), and not without pollFallback', async () => {
    server = await startTestServer((request, response) => {
      if (request.url.includes('/stream/')) response.writeHead(204).end();
      else json(response, 200, sessionDto({ version: 1 }));
    });
    const received: Session[] = [];
    subscription = subscribe({
      baseUrl: server.url,
      projectId: 5,
      workflowId: 'wf',
      credentials: { apiKey: 'wsk_key' },
      onSession: (session) => received.push(session),
      sleep: recordingSleep([]),
      pollFallback: {},
    });
    await until(() => received.length === 1, { what: 'a polled session' });
    subscription.close();
    await subscription.closed;
    subscription = subscribe({
      baseUrl: server.url,
      projectId: 5,
      workflowId: 'wf',
      credentials: { apiKey: 'wsk_key' },
      onSession: () => {},
      sleep: recordingSleep([]),
    });
    expect(await subscription.closed).toEqual({ reason: 'no_content' });
    expect(subscription.polling).toBe(false);
  });
});
