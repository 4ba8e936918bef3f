import { formatSessionFrame, SSE_END_FRAME } from '@wizard-stream/contracts';
import { until } from '@wizard-stream/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ConnectionState,
  type DeliveryInfo,
  type Session,
  type Subscription,
  subscribe,
  WizardApiError,
} from '../src/index.js';
import {
  json,
  openEventStream,
  recordingSleep,
  sequence,
  sessionDto,
  startTestServer,
  type TestServer,
} from './support/test-server.js';

const frame = (session: Session) =>
  formatSessionFrame(session.version, session.session_id, JSON.stringify(session));

let server: TestServer | undefined;
let subscription: Subscription | undefined;
afterEach(async () => {
  subscription?.close();
  await subscription?.closed;
  subscription = undefined;
  await server?.close();
  server = undefined;
});

function follow(
  baseUrl: string,
  extra: Partial<Parameters<typeof subscribe>[0]> = {},
): { received: Session[]; states: ConnectionState[]; delays: number[] } {
  const received: Session[] = [];
  const states: ConnectionState[] = [];
  const delays: number[] = [];
  subscription = subscribe({
    baseUrl,
    projectId: 5,
    workflowId: 'wf',
    skillId: 'skill',
    credentials: { apiKey: 'wsk_key' },
    onSession: (session) => received.push(session),
    onState: (state) => states.push(state),
    sleep: recordingSleep(delays),
    ...extra,
  });
  return { received, states, delays };
}

describe('subscribe (Node, streaming fetch)', () => {
  it('delivers typed sessions over a real SSE stream and reports its state', async () => {
    server = await startTestServer((_req, res) => {
      openEventStream(res);
      res.write('retry: 3000\n\n');
      res.write(frame(sessionDto({ version: 1 })));
      res.write(': ping\n\n');
      res.write(frame(sessionDto({ version: 2, run_phase: 'completed' })));
    });
    const { received, states } = follow(server.url);
    await until(() => received.length === 2, { what: 'two sessions' });
    expect(received.map((session) => [session.version, session.run_phase])).toEqual([
      [1, 'running'],
      [2, 'completed'],
    ]);
    const [request] = server.requests;
    expect(request?.url).toBe('/api/projects/5/wizard/sessions/stream/?workflow_id=wf&skill_id=skill');
    expect(request?.headers.authorization).toBe('Bearer wsk_key');
    expect(request?.headers.accept).toBe('text/event-stream');
    expect(request?.headers['last-event-id']).toBeUndefined();
    expect(subscription?.state).toBe('open');
    subscription?.close();
    expect(await subscription?.closed).toEqual({ reason: 'closed' });
    expect(states).toEqual(['connecting', 'open', 'closed']);
  });

  it('tells live updates from the snapshot, whose latency is only the session age', async () => {
    server = await startTestServer((_req, res) => {
      openEventStream(res);
      res.write(frame(sessionDto({ version: 1, updated_at: '2020-01-01T00:00:00.000Z' })));
      res.write(frame(sessionDto({ version: 2, updated_at: new Date().toISOString() })));
    });
    const deliveries: DeliveryInfo[] = [];
    follow(server.url, { onSession: (_session, info) => deliveries.push(info) });
    await until(() => deliveries.length === 2, { what: 'the snapshot and the live frame' });
    expect(deliveries.map((info) => info.live)).toEqual([false, true]);
    expect(deliveries[0]?.latencyMs).toBeGreaterThan(365 * 24 * 3600 * 1000);
  });

  it('sends Last-Event-ID on resume and drops versions it already has', async () => {
    server = await startTestServer((_req, res, index) => {
      openEventStream(res);
      if (index === 0) {
        res.write(frame(sessionDto({ version: 1 })));
        res.write(frame(sessionDto({ version: 2 })));
        // An out-of-order older version on the same connection is dropped too.
        res.write(frame(sessionDto({ version: 1 })));
        res.end();
      } else {
        // The re-sent snapshot (v2) must not reach onSession twice.
        res.write(frame(sessionDto({ version: 2 })));
        res.write(frame(sessionDto({ version: 3 })));
        res.write(frame(sessionDto({ session_id: 's2', version: 1 })));
      }
    });
    const { received, states } = follow(server.url);
    await until(() => received.length === 4, { what: 'four sessions' });
    expect(received.map((session) => `${session.session_id}@${session.version}`)).toEqual([
      's1@1',
      's1@2',
      's1@3',
      's2@1',
    ]);
    expect(server.requests).toHaveLength(2);
    expect(server.requests[0]?.headers['last-event-id']).toBeUndefined();
    expect(server.requests[1]?.headers['last-event-id']).toBe('2:s1');
    expect(subscription?.lastEventId).toBe('1:s2');
    expect(states).toEqual(['connecting', 'open', 'reconnecting', 'open']);
  });

  it('stops for good on 204', async () => {
    server = await startTestServer((_req, res) => {
      res.writeHead(204);
      res.end();
    });
    const { states, delays } = follow(server.url);
    expect(await subscription?.closed).toEqual({ reason: 'no_content' });
    expect(server.requests).toHaveLength(1);
    expect(delays).toEqual([]);
    expect(states).toEqual(['connecting', 'closed']);
  });

  it('reconnects promptly after event: end even while the server keeps the socket open', async () => {
    server = await startTestServer((_req, res, index) => {
      openEventStream(res);
      res.write(frame(sessionDto({ version: index + 1 })));
      if (index === 0) res.write(SSE_END_FRAME);
    });
    const { received, delays } = follow(server.url, { random: () => 0.5, endReconnectDelayMs: 200 });
    await until(() => received.length === 2, { what: 'the update after reconnecting' });
    expect(server.requests).toHaveLength(2);
    expect(server.requests[1]?.headers['last-event-id']).toBe('1:s1');
    expect(delays).toEqual([100]);
  });

  it('reconnects a stream that stays silent (no frame, no ping) for idleTimeoutMs', async () => {
    server = await startTestServer((_req, res, index) => {
      openEventStream(res);
      // The first connection then goes quiet with its socket open, as one lost without a FIN does.
      res.write(frame(sessionDto({ version: index + 1 })));
    });
    const errors: unknown[] = [];
    const { received } = follow(server.url, {
      idleTimeoutMs: 200,
      random: () => 0,
      onError: (error) => errors.push(error),
    });
    await until(() => received.length === 2, { what: 'the frame of the second connection' });
    expect(server.requests).toHaveLength(2);
    expect(String(errors[0])).toContain('silent for 200 ms');
  });

  it('keeps a stream whose heartbeats arrive, however long it carries no frame', async () => {
    server = await startTestServer((_req, res) => {
      openEventStream(res);
      res.write(frame(sessionDto({ version: 1 })));
      // Ten pings 50 ms apart span 2.5 idle timeouts; then the next frame on the same connection.
      let pings = 0;
      const heartbeat = setInterval(() => {
        if (++pings <= 10) {
          res.write(': ping\n\n');
          return;
        }
        clearInterval(heartbeat);
        res.write(frame(sessionDto({ version: 2 })));
      }, 50);
      res.on('close', () => clearInterval(heartbeat));
    });
    const { received } = follow(server.url, { idleTimeoutMs: 200 });
    await until(() => received.length === 2, { what: 'the frame after ten pings' });
    expect(server.requests).toHaveLength(1);
  });

  it('backs off exponentially with jitter while attempts fail, then opens', async () => {
    server = await startTestServer((_req, res, index) => {
      if (index < 5) {
        json(res, 500, { type: 'server_error', code: 'error', detail: 'boom', attr: null });
        return;
      }
      openEventStream(res);
      res.write(frame(sessionDto()));
    });
    const errors: unknown[] = [];
    const { received, delays, states } = follow(server.url, {
      baseDelayMs: 100,
      maxDelayMs: 1000,
      random: sequence(1, 0.5, 1, 0.9, 1),
      onError: (error) => errors.push(error),
    });
    await until(() => received.length === 1, { what: 'the session after the failures' });
    // Ceilings 100, 200, 400, 800, 1000 (capped), scaled by each jitter draw.
    expect(delays).toEqual([100, 100, 400, 720, 1000]);
    expect(errors).toHaveLength(5);
    expect(errors[0]).toBeInstanceOf(WizardApiError);
    expect(states).toEqual(['connecting', 'reconnecting', 'open']);
  });

  it('honours Retry-After on 503', async () => {
    server = await startTestServer((_req, res, index) => {
      if (index === 0) {
        json(
          res,
          503,
          { type: 'server_error', code: 'service_unavailable', detail: 'cap', attr: null },
          {
            'Retry-After': '27',
          },
        );
        return;
      }
      openEventStream(res);
      res.write(frame(sessionDto()));
    });
    const { received, delays } = follow(server.url);
    await until(() => received.length === 1, { what: 'the session after the 503' });
    expect(delays).toEqual([27_000]);
  });

  it('caps a Retry-After longer than maxRetryAfterMs', async () => {
    server = await startTestServer((_req, res, index) => {
      if (index === 0) {
        json(
          res,
          503,
          { type: 'server_error', code: 'unavailable', detail: 'x', attr: null },
          {
            'Retry-After': '86400',
          },
        );
        return;
      }
      openEventStream(res);
      res.write(frame(sessionDto()));
    });
    const { received, delays } = follow(server.url, { maxRetryAfterMs: 30_000 });
    await until(() => received.length === 1, { what: 'the session after the 503' });
    expect(delays).toEqual([30_000]);
  });

  it('keeps backing off when a server repeats Retry-After: 0', async () => {
    server = await startTestServer((_req, res, index) => {
      if (index < 3) {
        json(
          res,
          503,
          { type: 'server_error', code: 'service_unavailable', detail: 'busy', attr: null },
          { 'Retry-After': '0' },
        );
        return;
      }
      openEventStream(res);
      res.write(frame(sessionDto()));
    });
    const { received, delays } = follow(server.url, { baseDelayMs: 100, random: () => 1 });
    await until(() => received.length === 1, { what: 'the session after the 503s' });
    expect(delays).toEqual([100, 200, 400]);
  });

  it('resets the backoff after a healthy connection, grows it after short-lived ones', async () => {
    const handler = (_req: unknown, res: import('node:http').ServerResponse, index: number) => {
      openEventStream(res);
      res.write(frame(sessionDto({ version: index + 1 })));
      res.end();
    };
    server = await startTestServer(handler);
    const healthy = follow(server.url, { baseDelayMs: 100, random: () => 1, healthyAfterMs: 0 });
    await until(() => healthy.received.length >= 4, { what: 'four healthy connections' });
    subscription?.close();
    await subscription?.closed;
    expect(healthy.delays.slice(0, 3)).toEqual([100, 100, 100]);

    const shortLived = follow(server.url, { baseDelayMs: 100, random: () => 1, healthyAfterMs: 60_000 });
    await until(() => shortLived.delays.length >= 3, { what: 'three reconnects' });
    expect(shortLived.delays.slice(0, 3)).toEqual([100, 200, 400]);
  });

  it('stops on a 401 for a fixed API key, with the server detail', async () => {
    server = await startTestServer((_req, res) =>
      json(res, 401, {
        type: 'authentication_error',
        code: 'authentication_failed',
        detail: 'Invalid key.',
        attr: null,
      }),
    );
    follow(server.url);
    const close = await subscription?.closed;
    if (close?.reason !== 'rejected') throw new Error(`expected a rejection, got ${JSON.stringify(close)}`);
    expect(close.error).toBeInstanceOf(WizardApiError);
    expect(close.error).toMatchObject({ status: 401, detail: 'Invalid key.' });
    expect(server.requests).toHaveLength(1);
  });

  it('mints a fresh token through getToken when a stream token has expired', async () => {
    server = await startTestServer((req, res) => {
      if (req.headers.authorization !== 'Bearer token-2') {
        json(res, 401, {
          type: 'authentication_error',
          code: 'authentication_failed',
          detail: 'expired',
          attr: null,
        });
        return;
      }
      openEventStream(res);
      res.write(frame(sessionDto()));
    });
    let minted = 0;
    const { received } = follow(server.url, {
      credentials: { getToken: async () => `token-${++minted}` },
    });
    await until(() => received.length === 1, { what: 'the session with a fresh token' });
    expect(server.requests.map((request) => request.headers.authorization)).toEqual([
      'Bearer token-1',
      'Bearer token-2',
    ]);
  });

  it('drops a malformed frame and keeps the stream', async () => {
    server = await startTestServer((_req, res) => {
      openEventStream(res);
      res.write('id: 1:s1\ndata: {"not":"a session"}\n\n');
      res.write(frame(sessionDto({ version: 2 })));
    });
    const errors: unknown[] = [];
    const { received } = follow(server.url, { onError: (error) => errors.push(error) });
    await until(() => received.length === 1, { what: 'the valid session' });
    expect(received[0]?.version).toBe(2);
    expect(errors).toHaveLength(1);
  });
});
