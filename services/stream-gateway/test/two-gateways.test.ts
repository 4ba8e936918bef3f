import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

describe('two gateways, one write-api (postgres)', () => {
  let stack: TestStack;
  let gateways: RunningStreamGateway[];
  const open: SseStream[] = [];

  beforeAll(async () => {
    stack = await TestStack.start('postgres');
    gateways = [await stack.startGateway(), await stack.startGateway()];
  }, 60_000);

  afterAll(async () => {
    for (const stream of open) stream.close();
    await stack?.close();
  }, 30_000);

  it('clients on both gateways see the same final state', async () => {
    const team = stack.teams[0];
    const sessions = ['fleet-a', 'fleet-b'];
    await stack.upsert(team, { sessionId: 'fleet-a', workflowId: 'wf-fleet', skillId: 'one' });
    const streams: SseStream[] = [];
    for (const gateway of gateways) {
      for (const skillId of [undefined, 'one']) {
        const stream = await openStream(stack.streamUrl(gateway.url, team.teamId, 'wf-fleet', skillId), {
          authorization: `Bearer ${team.apiKey}`,
        });
        expect(stream.status).toBe(200);
        streams.push(stream);
        open.push(stream);
      }
    }
    const finals = new Map<string, { version: number; data: string }>();
    for (let round = 0; round < 20; round++) {
      for (const sessionId of sessions) {
        const skillId = sessionId === 'fleet-a' ? 'one' : 'two';
        const version = await stack.upsert(team, {
          sessionId,
          workflowId: 'wf-fleet',
          skillId,
          handoffText: `round ${round}`,
        });
        finals.set(sessionId, { version, data: '' });
      }
    }
    const finalA = finals.get('fleet-a')?.version as number;
    const finalB = finals.get('fleet-b')?.version as number;
    for (const stream of streams) {
      await stream.waitFor(() => stream.latestVersion('fleet-a') === finalA, {
        timeoutMs: 2000,
        what: 'fleet-a',
      });
    }
    const workflowStreams = [streams[0], streams[2]] as SseStream[];
    for (const stream of workflowStreams) {
      await stream.waitFor(() => stream.latestVersion('fleet-b') === finalB, {
        timeoutMs: 2000,
        what: 'fleet-b',
      });
    }
    const lastFrame = (stream: SseStream, sessionId: string) =>
      stream.sessions.filter((session) => session.sessionId === sessionId).at(-1)?.data;
    const reference = lastFrame(streams[0] as SseStream, 'fleet-a');
    expect(reference).toContain('"handoff_text":"round 19"');
    for (const stream of streams) expect(lastFrame(stream, 'fleet-a')).toBe(reference);
    expect(lastFrame(streams[2] as SseStream, 'fleet-b')).toBe(lastFrame(streams[0] as SseStream, 'fleet-b'));
    // Per session, each connection saw strictly increasing versions.
    for (const stream of streams) {
      for (const sessionId of sessions) {
        const versions = stream.sessions.filter((s) => s.sessionId === sessionId).map((s) => s.version);
        for (let index = 1; index < versions.length; index++) {
          expect(versions[index]).toBeGreaterThan(versions[index - 1] as number);
        }
      }
    }
  }, 60_000);
});
