import { NatsServer, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { openStream, type SseStream } from './helpers/sse-client.js';
import { TestStack } from './helpers/stack.js';

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
