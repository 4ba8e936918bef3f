import { latestSessionUrl } from '@wizard-stream/contracts';
import { until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { HoldingProxy } from './support/hold-proxy.js';
import { openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

function expectStrictlyIncreasingPerSession(stream: SseStream): void {
  const last = new Map<string, number>();
  for (const session of stream.sessions) {
    const previous = last.get(session.sessionId) ?? 0;
    expect(session.version, `${session.sessionId} after version ${previous}`).toBeGreaterThan(previous);
    last.set(session.sessionId, session.version);
  }
}

describe('subscribe before snapshot (postgres)', () => {
  let stack: TestStack;
  let proxy: HoldingProxy;
  let heldGateway: RunningStreamGateway;
  let gateway: RunningStreamGateway;
  const open: SseStream[] = [];

  beforeAll(async () => {
    stack = await TestStack.start('postgres');
    proxy = await HoldingProxy.start(stack.writeApi.url);
    heldGateway = await stack.startGateway({ WRITE_API_URL: proxy.url });
    gateway = await stack.startGateway();
  }, 60_000);

  afterAll(async () => {
    for (const stream of open) stream.close();
    await proxy?.close();
    await stack?.close();
  }, 30_000);

  it('delivers an update committed while the snapshot is in flight, and never the older snapshot after it', async () => {
    const team = stack.teams[0];
    const v1 = await stack.upsert(team, { sessionId: 'race-1', workflowId: 'wf-race', skillId: 's' });
    proxy.holding = true;
    const connecting = openStream(stack.streamUrl(heldGateway.url, team.teamId, 'wf-race', 's'), {
      authorization: `Bearer ${team.apiKey}`,
    });
    // write-api has answered the snapshot with v1; the gateway has not received it.
    await proxy.waitForHeld(1);
    const v2 = await stack.upsert(team, { sessionId: 'race-1', workflowId: 'wf-race', skillId: 's' });
    expect(v2).toBeGreaterThan(v1);
    // The live update has reached the connecting stream (held until its snapshot is written).
    await until(
      () => [...heldGateway.state.registry.connections].some((c) => c.pendingVersion('race-1') === v2),
      { what: 'v2 held by the connecting stream' },
    );
    proxy.release();
    const stream = await connecting;
    open.push(stream);
    expect(stream.status).toBe(200);
    await stream.waitFor(() => stream.latestVersion('race-1') === v2, {
      timeoutMs: 2000,
      what: 'the update',
    });
    const v3 = await stack.upsert(team, { sessionId: 'race-1', workflowId: 'wf-race', skillId: 's' });
    await stream.waitFor(() => stream.latestVersion('race-1') === v3, {
      timeoutMs: 2000,
      what: 'the next update',
    });
    expect(stream.sessions.map((session) => session.version)).toEqual([v2, v3]);
  });

  it('delivers the first session created while an empty snapshot is in flight', async () => {
    const team = stack.teams[0];
    proxy.holding = true;
    const connecting = openStream(stack.streamUrl(heldGateway.url, team.teamId, 'wf-race-empty'), {
      authorization: `Bearer ${team.apiKey}`,
    });
    await proxy.waitForHeld(1);
    const v1 = await stack.upsert(team, {
      sessionId: 'race-empty',
      workflowId: 'wf-race-empty',
      skillId: 'x.y',
    });
    await until(
      () => [...heldGateway.state.registry.connections].some((c) => c.pendingVersion('race-empty') === v1),
      { what: 'v1 held by the connecting stream' },
    );
    proxy.release();
    const stream = await connecting;
    open.push(stream);
    await stream.waitFor(() => stream.latestVersion('race-empty') === v1, {
      timeoutMs: 2000,
      what: 'the session',
    });
    expect(stream.sessions.map((session) => session.version)).toEqual([v1]);
  });

  it('coalesces identical snapshot calls: streams arriving while one is in flight share the next call', async () => {
    const team = stack.teams[0];
    const version = await stack.upsert(team, {
      sessionId: 'flight-1',
      workflowId: 'wf-flight',
      skillId: 's',
    });
    const url = stack.streamUrl(heldGateway.url, team.teamId, 'wf-flight', 's');
    const headers = { authorization: `Bearer ${team.apiKey}` };
    const callsBefore = proxy.latestCalls;
    const streamsBefore = heldGateway.state.registry.size;
    proxy.holding = true;
    const first = openStream(url, headers);
    await proxy.waitForHeld(1);
    const followers = Array.from({ length: 10 }, () => openStream(url, headers));
    await until(() => heldGateway.state.registry.size === streamsBefore + 11, {
      what: 'the followers waiting for a snapshot',
    });
    proxy.release();
    const streams = await Promise.all([first, ...followers]);
    open.push(...streams);
    for (const stream of streams) {
      expect(stream.status).toBe(200);
      await stream.waitFor(() => stream.latestVersion('flight-1') === version, {
        what: 'the shared snapshot',
      });
    }
    // The running call, plus one queued call for everyone who arrived after it had started.
    expect(proxy.latestCalls - callsBefore).toBe(2);
  });

  it('at scale: 20 streams connecting during 200 concurrent upserts all end on the final version', async () => {
    const team = stack.teams[1];
    const session = { sessionId: 'race-scale', workflowId: 'wf-scale', skillId: 'skill' };
    await stack.upsert(team, session);
    const url = stack.streamUrl(gateway.url, team.teamId, 'wf-scale', 'skill');
    let remaining = 200;
    const upserter = async () => {
      while (remaining > 0) {
        remaining--;
        await stack.upsert(team, session);
      }
    };
    const upserts = Promise.all(Array.from({ length: 4 }, upserter));
    const streams: SseStream[] = [];
    for (let index = 0; index < 20; index++) {
      const stream = await openStream(url, { authorization: `Bearer ${team.apiKey}` });
      open.push(stream);
      streams.push(stream);
      expect(stream.status).toBe(200);
    }
    await upserts;
    const latest = await fetch(latestSessionUrl(stack.writeApi.url, team.teamId, 'wf-scale', 'skill'), {
      headers: { authorization: `Bearer ${team.apiKey}` },
    });
    const finalVersion = ((await latest.json()) as { version: number }).version;
    expect(finalVersion).toBe(201);
    for (const stream of streams) {
      await stream.waitFor(() => stream.latestVersion('race-scale') === finalVersion, {
        timeoutMs: 5000,
        what: 'the final version on every stream',
      });
      expectStrictlyIncreasingPerSession(stream);
    }
  }, 60_000);
});
