import { createPushClient, poll, type Session, type Subscription, subscribe } from '@wizard-stream/client';
import { type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import {
  loadStreamGatewayConfig,
  type RunningStreamGateway,
  startStreamGateway,
} from '@wizard-stream/stream-gateway';
import {
  createTestDatabase,
  metricValue,
  NatsServer,
  type TestDatabase,
  until,
} from '@wizard-stream/testkit';
import { loadWriteApiConfig, type RunningWriteApi, startWriteApi } from '@wizard-stream/write-api';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type SplitProxy, startSplitProxy } from './support/split-proxy.js';

/** How often write-api counted this poll source and result (its /metrics). */
async function pollCount(writeApiUrl: string, source: string, result: string): Promise<number> {
  const text = await (await fetch(`${writeApiUrl}/metrics`)).text();
  return metricValue(text, 'wizard_latest_requests_total', { source, result });
}

describe('the SDK polling transport and its SSE fallback, against the running services', () => {
  let nats: NatsServer;
  let database: TestDatabase;
  let writeApi: RunningWriteApi;
  let killedGateway: RunningStreamGateway;
  let team: SeededMember;
  const proxies: SplitProxy[] = [];
  let subscription: Subscription | undefined;

  beforeAll(async () => {
    nats = await NatsServer.start();
    database = await createTestDatabase('pglite');
    team = await seedTeamWithMember(database.db, {
      teamName: 'poll',
      email: 'poll@example.test',
      firstName: 'Po',
    });
    writeApi = await startWriteApi(
      loadWriteApiConfig({ PORT: '0', NATS_URL: nats.url, LOG_LEVEL: 'silent', MIGRATE_ON_START: '0' }),
      { database },
    );
    killedGateway = await startStreamGateway(
      loadStreamGatewayConfig({
        PORT: '0',
        NATS_URL: nats.url,
        WRITE_API_URL: writeApi.url,
        STREAM_KILLSWITCH: '1',
        LOG_LEVEL: 'silent',
      }),
    );
  }, 60_000);
  afterEach(async () => {
    subscription?.close();
    await subscription?.closed;
    subscription = undefined;
  });
  afterAll(async () => {
    for (const proxy of proxies) await proxy.close();
    await killedGateway?.close();
    await writeApi?.close();
    await database?.dispose();
    await nats?.stop();
  }, 30_000);

  const push = (workflowId: string, version: 'running' | 'completed') =>
    createPushClient({ baseUrl: writeApi.url, projectId: team.teamId, apiKey: team.apiKey }).upsert({
      session_id: `${workflowId}-run`,
      workflow_id: workflowId,
      skill_id: 'nextjs',
      started_at: '2026-12-01T00:00:00Z',
      run_phase: version,
      tasks: [{ id: 't', title: 'Install', status: version === 'completed' ? 'cancelled' : 'in_progress' }],
    });

  it('falls back to polling where SSE cannot pass, polls with ETags (304s) and delivers each change', async () => {
    const proxy = await startSplitProxy(writeApi.url, undefined);
    proxies.push(proxy);
    await push('blocked', 'running');
    const received: Session[] = [];
    subscription = subscribe({
      baseUrl: proxy.url,
      projectId: team.teamId,
      workflowId: 'blocked',
      credentials: { apiKey: team.apiKey },
      transport: 'fetch',
      baseDelayMs: 50,
      pollFallback: { afterFailures: 2, intervalMs: 1000 },
      onSession: (session) => received.push(session),
    });
    await until(() => received.length === 1, { what: 'the polled session', timeoutMs: 15_000 });
    expect(subscription.polling).toBe(true);
    expect(proxy.refusedStreams).toBe(2);
    expect(received[0]?.version).toBe(1);

    // Unchanged polls cost write-api a 304 (counted under the SDK's source).
    const notModified = await pollCount(writeApi.url, 'sdk', 'not_modified');
    await until(async () => (await pollCount(writeApi.url, 'sdk', 'not_modified')) > notModified, {
      what: 'a 304 poll',
      timeoutMs: 15_000,
    });

    await push('blocked', 'completed');
    await until(() => received.length === 2, { what: 'the change', timeoutMs: 15_000 });
    expect(received[1]).toMatchObject({ version: 2, run_phase: 'completed' });
    expect(received[1]?.tasks[0]?.status).toBe('canceled');
    expect(subscription.state).toBe('open');
  }, 60_000);

  it('falls back to polling when the gateway is killswitched (204)', async () => {
    const proxy = await startSplitProxy(writeApi.url, killedGateway.url);
    proxies.push(proxy);
    await push('killed', 'running');
    const received: Session[] = [];
    subscription = subscribe({
      baseUrl: proxy.url,
      projectId: team.teamId,
      workflowId: 'killed',
      credentials: { apiKey: team.apiKey },
      transport: 'fetch',
      pollFallback: { intervalMs: 1000 },
      onSession: (session) => received.push(session),
    });
    await until(() => received.length === 1, { what: 'the polled session', timeoutMs: 15_000 });
    expect(subscription.polling).toBe(true);
  }, 30_000);

  it('stops polling on 401 and 404 from write-api', async () => {
    const refusedBy = async (apiKey: string, projectId: number) => {
      subscription = poll({
        baseUrl: writeApi.url,
        projectId,
        workflowId: 'blocked',
        credentials: { apiKey },
        onSession: () => {},
      });
      const close = await subscription.closed;
      return close.reason === 'rejected' ? (close.error as { status?: number }).status : close.reason;
    };
    expect(await refusedBy('wsk_not-a-key', team.teamId)).toBe(401);
    expect(await refusedBy(team.apiKey, team.teamId + 1000)).toBe(404);
  });
});
