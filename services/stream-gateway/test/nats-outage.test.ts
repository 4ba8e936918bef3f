import { sessionsUrl, streamUrl } from '@wizard-stream/contracts';
import { type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import { createTestDatabase, freePort, NatsServer, type TestDatabase, until } from '@wizard-stream/testkit';
import { loadWriteApiConfig, type RunningWriteApi, startWriteApi } from '@wizard-stream/write-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadStreamGatewayConfig, type RunningStreamGateway, startStreamGateway } from '../src/index.js';
import { openStream, type SseStream } from './support/sse-client.js';
import { INTERNAL_API_TOKEN, TestStack } from './support/stack.js';

async function resnapshotCalls(gateway: RunningStreamGateway): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('wizard_gateway_snapshot_calls_total') && line.includes('purpose="resnapshot"')) {
      total += Number(line.split(' ').at(-1));
    }
  }
  return total;
}

describe('NATS outage (postgres)', () => {
  let stack: TestStack;
  let gateway: RunningStreamGateway;
  const open: SseStream[] = [];

  beforeAll(async () => {
    stack = await TestStack.start('postgres');
    gateway = await stack.startGateway();
  }, 60_000);

  afterAll(async () => {
    for (const stream of open) stream.close();
    await stack?.close();
  }, 30_000);

  it('delivers what was committed during the outage within 10 s of NATS returning, and keeps streaming', async () => {
    const team = stack.teams[0];
    const exact = { sessionId: 'outage-1', workflowId: 'wf-out', skillId: 's' };
    const v1 = await stack.upsert(team, exact);
    const headers = { authorization: `Bearer ${team.apiKey}` };
    const exactStream = await openStream(stack.streamUrl(gateway.url, team.teamId, 'wf-out', 's'), headers);
    const workflowStream = await openStream(stack.streamUrl(gateway.url, team.teamId, 'wf-out'), headers);
    open.push(exactStream, workflowStream);
    for (const stream of [exactStream, workflowStream]) {
      await stream.waitFor(() => stream.latestVersion('outage-1') === v1, { what: 'the snapshot' });
    }

    await stack.nats.stop();
    await until(async () => (await fetch(`${gateway.url}/readyz`)).status === 503, {
      what: 'the gateway unready without NATS',
    });
    let committed = 0;
    for (let index = 0; index < 3; index++) committed = await stack.upsert(team, exact);
    expect(committed).toBe(v1 + 3);
    const resnapshotsBefore = await resnapshotCalls(gateway);

    await stack.nats.restart();
    const returnedAt = Date.now();
    for (const stream of [exactStream, workflowStream]) {
      await stream.waitFor(() => stream.latestVersion('outage-1') === committed, {
        timeoutMs: 10_000,
        what: 'the version committed during the outage',
      });
    }
    expect(Date.now() - returnedAt).toBeLessThan(10_000);
    await until(async () => (await resnapshotCalls(gateway)) > resnapshotsBefore, {
      what: 'a re-snapshot after the reconnect',
    });
    expect((await fetch(`${gateway.url}/readyz`)).status).toBe(200);

    // write-api reconnects on its own schedule; a live update is only promised once it is back.
    await until(
      async () => {
        const readiness = (await (await fetch(`${stack.writeApi.url}/readyz`)).json()) as {
          checks?: { nats?: boolean };
        };
        return readiness.checks?.nats === true;
      },
      { what: 'write-api connected to NATS again' },
    );
    const after = await stack.upsert(team, exact);
    for (const stream of [exactStream, workflowStream]) {
      await stream.waitFor(() => stream.latestVersion('outage-1') === after, {
        timeoutMs: 2000,
        what: 'a live update after the outage',
      });
      const versions = stream.sessions.map((session) => session.version);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
      expect(new Set(versions).size).toBe(versions.length);
    }
  }, 60_000);

  it('re-snapshots with INTERNAL_API_TOKEN after a reconnect, even for updates the gateway never heard', async () => {
    // This gateway listens on its own nats-server, which write-api does not publish to: whatever it
    // delivers beyond the connect snapshot can only come from the re-snapshot.
    const isolatedNats = await NatsServer.start();
    try {
      const isolated = await stack.startGateway({ NATS_URL: isolatedNats.url });
      const team = stack.teams[1];
      const session = { sessionId: 'unheard-1', workflowId: 'wf-unheard', skillId: 's' };
      const v1 = await stack.upsert(team, session);
      const stream = await openStream(stack.streamUrl(isolated.url, team.teamId, 'wf-unheard', 's'), {
        authorization: `Bearer ${team.apiKey}`,
      });
      open.push(stream);
      await stream.waitFor(() => stream.latestVersion('unheard-1') === v1, { what: 'the snapshot' });
      const v2 = await stack.upsert(team, session);

      await isolatedNats.stop();
      await until(() => !isolated.state.bus.isConnected(), { what: 'the gateway disconnected' });
      expect(stream.latestVersion('unheard-1')).toBe(v1);
      await isolatedNats.restart();
      await stream.waitFor(() => stream.latestVersion('unheard-1') === v2, {
        timeoutMs: 10_000,
        what: 'the re-snapshot of the unheard update',
      });
      expect(stream.sessions.map((event) => event.version)).toEqual([v1, v2]);
    } finally {
      await isolatedNats.stop();
    }
  }, 60_000);
});

describe('NATS outage of the gateway alone (its node dies, write-api keeps publishing)', () => {
  // Two clustered nodes that advertise no peers to clients: write-api publishes on A, the gateway
  // subscribes on B, and while B is down the gateway has nowhere to reconnect to.
  let nodeA: NatsServer;
  let nodeB: NatsServer;
  let database: TestDatabase;
  let writeApi: RunningWriteApi;
  let gateway: RunningStreamGateway;
  let team: SeededMember;
  let stream: SseStream | undefined;

  beforeAll(async () => {
    const [routeA, routeB] = [await freePort(), await freePort()];
    const cluster = (port: number, peer: number) => ({
      name: 'gateway-outage',
      port,
      routes: [`nats://127.0.0.1:${peer}`],
    });
    nodeA = await NatsServer.start({ cluster: cluster(routeA, routeB), noAdvertise: true });
    nodeB = await NatsServer.start({ cluster: cluster(routeB, routeA), noAdvertise: true });
    database = await createTestDatabase('postgres');
    team = await seedTeamWithMember(database.db, { teamName: 'outage', email: 'gateway-outage@example.com' });
    writeApi = await startWriteApi(loadWriteApiConfig(TestStack.writeApiEnv(nodeA, database)), { database });
    gateway = await startStreamGateway(
      loadStreamGatewayConfig({
        PORT: '0',
        NATS_URL: nodeB.url,
        WRITE_API_URL: writeApi.url,
        WRITE_API_INTERNAL_URL: writeApi.internalUrl ?? '',
        INTERNAL_API_TOKEN,
        LOG_LEVEL: 'error',
      }),
    );
  }, 60_000);

  afterAll(async () => {
    stream?.close();
    await gateway?.close();
    await writeApi?.close();
    await database?.dispose();
    await nodeB?.stop();
    await nodeA?.stop();
  }, 30_000);

  const upsert = async (sessionId: string, skillId: string, startedAt: string): Promise<number> => {
    const response = await fetch(sessionsUrl(writeApi.url, team.teamId), {
      method: 'POST',
      headers: { authorization: `Bearer ${team.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        session_id: sessionId,
        workflow_id: 'wf-gw-outage',
        skill_id: skillId,
        started_at: startedAt,
        run_phase: 'running',
        tasks: [],
      }),
    });
    expect(response.status).toBeLessThan(300);
    return ((await response.json()) as { version: number }).version;
  };

  it('re-reads every session of a workflow stream that changed while it was gone, not only the latest', async () => {
    const older = (skill: string) => upsert('older-run', skill, '2026-01-01T00:00:00Z');
    const newer = () => upsert('newer-run', 'b', '2026-01-02T00:00:00Z');
    await older('a');
    await newer();
    stream = await openStream(streamUrl(gateway.url, team.teamId, 'wf-gw-outage'), {
      authorization: `Bearer ${team.apiKey}`,
    });
    const open = stream;
    // Live through the route from A to B: the subscription has reached write-api's node.
    let pushed = 0;
    await until(
      async () => {
        if (pushed > 0 && open.latestVersion('older-run') >= pushed) return true;
        pushed = await older('a');
        return undefined;
      },
      { intervalMs: 300, what: 'a live update from node A on node B' },
    );

    await nodeB.stop();
    const olderFinal = await older('a');
    const newerFinal = await newer();
    // Published and confirmed on A, so write-api's relay has nothing to send again: only the gateway's
    // own re-read can bring these versions to the stream.
    await until(
      async () => {
        const rows = await database.db
          .selectFrom('wizard_sessions')
          .select(['version', 'published_version'])
          .where('workflow_id', '=', 'wf-gw-outage')
          .execute();
        return rows.every((row) => row.published_version === row.version) ? true : undefined;
      },
      { what: 'both publishes confirmed by node A' },
    );

    await nodeB.restart();
    await open.waitFor(
      () => open.latestVersion('older-run') === olderFinal && open.latestVersion('newer-run') === newerFinal,
      { timeoutMs: 10_000, what: 'both sessions changed during the outage' },
    );
  }, 60_000);
});
