import { Writable } from 'node:stream';
import { streamTokensUrl } from '@wizard-stream/contracts';
import { until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { openAndRead, openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

const ERROR_BODY_KEYS = ['attr', 'code', 'detail', 'type'];

describe('stream route against running servers (postgres)', () => {
  let stack: TestStack;
  let gateway: RunningStreamGateway;
  let cappedGateway: RunningStreamGateway;
  let killedGateway: RunningStreamGateway;
  let fastTimersGateway: RunningStreamGateway;
  const logLines: string[] = [];
  const open: SseStream[] = [];

  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  const track = (stream: SseStream) => {
    open.push(stream);
    return stream;
  };

  beforeAll(async () => {
    stack = await TestStack.start('postgres');
    const logStream = new Writable({
      write(chunk, _encoding, callback) {
        logLines.push(...chunk.toString().split('\n').filter(Boolean));
        callback();
      },
    });
    gateway = await stack.startGateway(
      { LOG_LEVEL: 'info', CORS_ORIGINS: 'https://app.example.com' },
      { logStream },
    );
    cappedGateway = await stack.startGateway({ MAX_STREAMS: '1' });
    killedGateway = await stack.startGateway({ STREAM_KILLSWITCH: '1' });
    fastTimersGateway = await stack.startGateway({ HEARTBEAT_MS: '200', STREAM_MAX_DURATION_MS: '1500' });
  }, 60_000);

  afterAll(async () => {
    for (const stream of open) stream.close();
    await stack?.close();
  }, 30_000);

  const [teamOne, teamTwo] = [() => stack.teams[0], () => stack.teams[1]];

  it('answers 400 before anything else: invalid ids win over a refused Accept, no credentials and a full gateway', async () => {
    const holder = track(
      await openStream(
        stack.streamUrl(cappedGateway.url, teamOne().teamId, 'wf-cap'),
        bearer(teamOne().apiKey),
      ),
    );
    expect(holder.status).toBe(200);
    const base = `${cappedGateway.url}/api/projects`;
    const cases = [
      `${base}/${teamOne().teamId}/wizard/sessions/stream/`,
      `${base}/${teamOne().teamId}/wizard/sessions/stream/?workflow_id=*`,
      `${base}/${teamOne().teamId}/wizard/sessions/stream/?workflow_id=%3E`,
      `${base}/${teamOne().teamId}/wizard/sessions/stream/?workflow_id=a%252Eb`,
      `${base}/${teamOne().teamId}/wizard/sessions/stream/?workflow_id=ok&skill_id=a%20b`,
      `${base}/${teamOne().teamId}/wizard_sessions/stream/?workflow_id=ok&skill_id=%2A`,
      `${base}/not-a-number/wizard/sessions/stream/?workflow_id=ok`,
      `${base}/0/wizard/sessions/stream/?workflow_id=ok`,
    ];
    for (const url of cases) {
      const response = await openAndRead(url, { accept: 'application/json' });
      expect(response.status, url).toBe(400);
      const body = JSON.parse(response.body);
      expect(Object.keys(body).sort(), url).toEqual(ERROR_BODY_KEYS);
      expect(body, url).toMatchObject({ type: 'validation_error', code: 'invalid_input' });
    }
    const missing = JSON.parse((await openAndRead(cases[0] as string)).body);
    expect(missing.attr).toBe('workflow_id');
  });

  it('answers 406 when Accept refuses text/event-stream, before checking credentials', async () => {
    for (const accept of ['application/json', 'text/event-stream;q=0, */*;q=1', 'text/html']) {
      const response = await openAndRead(stack.streamUrl(gateway.url, teamOne().teamId, 'wf'), { accept });
      expect(response.status, accept).toBe(406);
      expect(JSON.parse(response.body)).toMatchObject({
        type: 'invalid_request',
        code: 'not_acceptable',
        attr: null,
      });
    }
  });

  it('answers 401 at once without credentials, and passes write-api 401 through for bad ones', async () => {
    const none = await openAndRead(stack.streamUrl(gateway.url, teamOne().teamId, 'wf'));
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body)).toMatchObject({ type: 'authentication_error', code: 'not_authenticated' });

    // A query token no header could carry (it would make the snapshot call itself fail) is no credential.
    for (const token of ['%0A', 'wst_%E2%9C%93', '%20']) {
      const unusable = await openAndRead(
        `${stack.streamUrl(gateway.url, teamOne().teamId, 'wf')}&token=${token}`,
      );
      expect(unusable.status, token).toBe(401);
    }

    const bad = await openAndRead(
      stack.streamUrl(gateway.url, teamOne().teamId, 'wf'),
      bearer('wsk_not-a-real-key'),
    );
    expect(bad.status).toBe(401);
    expect(JSON.parse(bad.body)).toMatchObject({ type: 'authentication_error' });
    await until(() => gateway.state.hub.size === 0 && gateway.state.registry.size === 0, {
      what: 'the subscription of the refused stream released',
    });
  });

  it('passes 404 through for a project the caller is not a member of and releases the subscription', async () => {
    const response = await openAndRead(
      stack.streamUrl(gateway.url, teamTwo().teamId, 'wf-foreign'),
      bearer(teamOne().apiKey),
    );
    expect(response.status).toBe(404);
    const body = JSON.parse(response.body);
    expect(Object.keys(body).sort()).toEqual(ERROR_BODY_KEYS);
    expect(body).toMatchObject({ code: 'not_found' });
    await until(() => gateway.state.hub.size === 0, { what: 'the foreign subscription released' });
  });

  it('answers 503 at the stream cap with a Retry-After between 15 and 45 seconds', async () => {
    await until(() => cappedGateway.state.registry.size === 1, { what: 'the cap holder counted' });
    const seen = new Set<number>();
    for (let attempt = 0; attempt < 8; attempt++) {
      const response = await openAndRead(
        stack.streamUrl(cappedGateway.url, teamOne().teamId, 'wf-cap'),
        bearer(teamOne().apiKey),
      );
      expect(response.status).toBe(503);
      const retryAfter = Number(response.headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(15);
      expect(retryAfter).toBeLessThanOrEqual(45);
      seen.add(retryAfter);
      expect(JSON.parse(response.body)).toMatchObject({ type: 'server_error', code: 'service_unavailable' });
    }
    expect(seen.size, 'Retry-After is jittered').toBeGreaterThan(1);
  });

  it('answers 204 with an empty body when the killswitch is on, whatever the request', async () => {
    for (const url of [
      stack.streamUrl(killedGateway.url, teamOne().teamId, 'wf'),
      `${killedGateway.url}/api/projects/x/wizard/sessions/stream/`,
    ]) {
      const response = await openAndRead(url, { accept: 'application/json' });
      expect(response.status).toBe(204);
      expect(response.body).toBe('');
    }
  });

  it('streams with the headers of docs/wire-format.md#sse: retry first, then the snapshot, then live updates', async () => {
    const version = await stack.upsert(teamOne(), {
      sessionId: 'headers-1',
      workflowId: 'wf-h',
      skillId: 's',
    });
    const stream = track(
      await openStream(stack.streamUrl(gateway.url, teamOne().teamId, 'wf-h', 's'), {
        ...bearer(teamOne().apiKey),
        origin: 'https://app.example.com',
      }),
    );
    expect(stream.status).toBe(200);
    expect(stream.headers['content-type']).toBe('text/event-stream');
    expect(stream.headers['cache-control']).toBe('no-cache, no-transform');
    expect(stream.headers['x-accel-buffering']).toBe('no');
    expect(stream.headers['access-control-allow-origin']).toBe('https://app.example.com');
    await stream.waitFor(() => stream.sessions.length >= 1, { what: 'the snapshot' });
    const [snapshot] = stream.sessions;
    expect(snapshot).toMatchObject({ id: `${version}:headers-1`, version, sessionId: 'headers-1' });
    expect(stream.events[0]?.retry).toBe(3000);

    const next = await stack.upsert(teamOne(), { sessionId: 'headers-1', workflowId: 'wf-h', skillId: 's' });
    await stream.waitFor(() => stream.latestVersion('headers-1') === next, {
      timeoutMs: 2000,
      what: 'the update',
    });
    expect(stream.sessions.map((session) => session.version)).toEqual([version, next]);
  });

  it('exposes the fan-out metrics on /metrics', async () => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const value = (name: string) => {
      const line = text.split('\n').find((candidate) => candidate.startsWith(name));
      return line === undefined ? Number.NaN : Number(line.split(' ').at(-1));
    };
    expect(value('wizard_gateway_open_streams')).toBeGreaterThanOrEqual(1);
    expect(value('wizard_gateway_nats_subscriptions')).toBeGreaterThanOrEqual(1);
    expect(value('wizard_gateway_frames_delivered_total')).toBeGreaterThanOrEqual(2);
    expect(value('wizard_gateway_commit_to_write_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/wizard_gateway_snapshot_calls_total\{[^}]*outcome="ok"[^}]*purpose="connect"/);
    expect(text).toContain('wizard_gateway_frames_conflated_total');
    expect(text).toContain('wizard_gateway_slow_client_closes_total');
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);
  });

  it('opens an empty stream when no session exists yet, then delivers the first one', async () => {
    const stream = track(
      await openStream(stack.streamUrl(gateway.url, teamOne().teamId, 'wf-empty'), bearer(teamOne().apiKey)),
    );
    expect(stream.status).toBe(200);
    const version = await stack.upsert(teamOne(), {
      sessionId: 'empty-1',
      workflowId: 'wf-empty',
      skillId: 's',
    });
    await stream.waitFor(() => stream.sessions.length === 1, { timeoutMs: 2000, what: 'the first session' });
    expect(stream.sessions[0]?.version).toBe(version);
  });

  it('skips the snapshot when Last-Event-ID names it, and sends it when it is older', async () => {
    const first = await stack.upsert(teamOne(), { sessionId: 'resume-1', workflowId: 'wf-r', skillId: 's' });
    const second = await stack.upsert(teamOne(), { sessionId: 'resume-1', workflowId: 'wf-r', skillId: 's' });
    const url = stack.streamUrl(gateway.url, teamOne().teamId, 'wf-r', 's');

    const stale = track(
      await openStream(url, { ...bearer(teamOne().apiKey), 'last-event-id': `${first}:resume-1` }),
    );
    await stale.waitFor(() => stale.sessions.length === 1, { what: 'the newer snapshot' });
    expect(stale.sessions[0]?.version).toBe(second);

    const resumed = track(
      await openStream(url, { ...bearer(teamOne().apiKey), 'last-event-id': `${second}:resume-1` }),
    );
    expect(resumed.status).toBe(200);
    const third = await stack.upsert(teamOne(), { sessionId: 'resume-1', workflowId: 'wf-r', skillId: 's' });
    await resumed.waitFor(() => resumed.sessions.length >= 1, { timeoutMs: 2000, what: 'the live update' });
    expect(resumed.sessions.map((session) => session.version)).toEqual([third]);
  });

  it('accepts a stream token in ?token= and never logs it', async () => {
    const minted = await fetch(streamTokensUrl(stack.writeApi.url, teamOne().teamId), {
      method: 'POST',
      headers: bearer(teamOne().apiKey),
    });
    expect(minted.status).toBeLessThan(300);
    const { token } = (await minted.json()) as { token: string };
    const version = await stack.upsert(teamOne(), { sessionId: 'token-1', workflowId: 'wf-t', skillId: 's' });
    const url = `${stack.streamUrl(gateway.url, teamOne().teamId, 'wf-t')}&token=${encodeURIComponent(token)}`;
    const stream = track(await openStream(url));
    expect(stream.status).toBe(200);
    await stream.waitFor(() => stream.latestVersion('token-1') === version, {
      what: 'the snapshot via token',
    });
    // A refused token is logged too (the request line): still redacted.
    const refused = await openAndRead(
      `${stack.streamUrl(gateway.url, teamOne().teamId, 'wf-t')}&token=bogus-secret-value`,
      { 'x-request-id': 'edge-request-7' },
    );
    expect(refused.status).toBe(401);
    // Its log lines carry the edge's request id.
    await until(() => logLines.some((line) => line.includes('"reqId":"edge-request-7"')), {
      what: "a log line with the edge's request id",
    });

    await until(() => logLines.some((line) => line.includes('wf-t')), { what: 'the stream request logged' });
    const mentioning = logLines.filter((line) => line.includes('wf-t'));
    expect(mentioning.some((line) => line.includes('token=[REDACTED]'))).toBe(true);
    for (const line of logLines) {
      expect(line).not.toContain(token);
      expect(line).not.toContain(encodeURIComponent(token));
      expect(line).not.toContain('bogus-secret-value');
      expect(line).not.toContain(teamOne().apiKey);
    }
  });

  it('sends `: ping` after HEARTBEAT_MS without a frame', async () => {
    const stream = track(
      await openStream(
        stack.streamUrl(fastTimersGateway.url, teamOne().teamId, 'wf-ping'),
        bearer(teamOne().apiKey),
      ),
    );
    expect(stream.status).toBe(200);
    const openedAt = Date.now();
    await stream.waitFor(() => stream.comments.includes('ping'), { timeoutMs: 1200, what: 'a heartbeat' });
    expect(Date.now() - openedAt).toBeGreaterThanOrEqual(150);
    expect(stream.sessions).toEqual([]);
  });

  it('rotates after STREAM_MAX_DURATION_MS: `event: end` / `data: reconnect`, then the socket closes', async () => {
    const openedAt = Date.now();
    const stream = track(
      await openStream(
        stack.streamUrl(fastTimersGateway.url, teamOne().teamId, 'wf-rotate'),
        bearer(teamOne().apiKey),
      ),
    );
    expect(stream.status).toBe(200);
    await stream.waitFor(() => stream.closed, { timeoutMs: 5000, what: 'the rotation close' });
    const elapsed = Date.now() - openedAt;
    expect(elapsed).toBeGreaterThanOrEqual(1350 - 100);
    expect(elapsed).toBeLessThan(4000);
    expect(stream.events.at(-1)).toMatchObject({ event: 'end', data: 'reconnect' });
    await until(() => fastTimersGateway.state.registry.size <= 1, { what: 'the rotated stream released' });
  });
});

describe('stream route without NATS', () => {
  it('answers 503 with Retry-After while NATS has never been connected', async () => {
    const stack = await TestStack.start('postgres');
    try {
      const gateway = await stack.startGatewayWithoutBus();
      const response = await openAndRead(stack.streamUrl(gateway.url, stack.teams[0].teamId, 'wf'), {
        authorization: `Bearer ${stack.teams[0].apiKey}`,
      });
      expect(response.status).toBe(503);
      expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(15);
      const ready = await fetch(`${gateway.url}/readyz`);
      expect(ready.status).toBe(503);
      expect((await fetch(`${gateway.url}/healthz`)).status).toBe(200);
    } finally {
      await stack.close();
    }
  }, 60_000);
});
