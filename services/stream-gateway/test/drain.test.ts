import { fileURLToPath } from 'node:url';
import { type ServiceProcess, spawnService, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAndRead, openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

const GATEWAY_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const DRAIN_MS = 3000;
const STREAMS = 100;

describe('SIGTERM drain (gateway as a child process)', () => {
  let stack: TestStack;
  let gateway: ServiceProcess | undefined;
  const open: SseStream[] = [];

  beforeAll(async () => {
    stack = await TestStack.start('postgres');
  }, 60_000);

  afterAll(async () => {
    for (const stream of open) stream.close();
    await gateway?.kill('SIGKILL');
    await stack?.close();
  }, 30_000);

  it(`ends ${STREAMS} open streams with \`event: end\` spread over DRAIN_MS and exits within DRAIN_MS + 2 s`, async () => {
    const team = stack.teams[0];
    const version = await stack.upsert(team, { sessionId: 'drain-1', workflowId: 'wf-drain', skillId: 's' });
    gateway = await spawnService(GATEWAY_MAIN, stack.gatewayEnv({ DRAIN_MS: String(DRAIN_MS) }));
    const running = gateway;
    await until(async () => (await fetch(`${running.url}/readyz`)).status === 200, { what: 'gateway ready' });
    const url = stack.streamUrl(running.url, team.teamId, 'wf-drain', 's');
    const headers = { authorization: `Bearer ${team.apiKey}` };
    const streams = await Promise.all(Array.from({ length: STREAMS }, () => openStream(url, headers)));
    open.push(...streams);
    for (const stream of streams) {
      expect(stream.status).toBe(200);
      await stream.waitFor(() => stream.latestVersion('drain-1') === version, { what: 'the snapshot' });
    }
    const endedAt = new Map<SseStream, number>();
    for (const stream of streams) {
      void stream
        .waitFor(() => stream.events.some((event) => event.event === 'end'), { timeoutMs: DRAIN_MS + 5000 })
        .then(() => endedAt.set(stream, Date.now()))
        .catch(() => {});
    }

    const signalledAt = Date.now();
    process.kill(running.pid, 'SIGTERM');
    await until(async () => (await fetch(`${running.url}/readyz`).catch(() => undefined))?.status === 503, {
      what: 'readiness false while draining',
      timeoutMs: DRAIN_MS,
    });
    const refused = await openAndRead(url, headers);
    expect(refused.status).toBe(503);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(15);

    const exit = await running.exited;
    const exitedAfter = Date.now() - signalledAt;
    expect(exit.code, running.output()).toBe(0);
    expect(exitedAfter).toBeLessThan(DRAIN_MS + 2000);
    for (const stream of streams) {
      await stream.waitFor(() => stream.closed, { timeoutMs: 2000, what: 'the stream closed' });
      expect(stream.events.at(-1)).toMatchObject({ event: 'end', data: 'reconnect' });
    }
    const times = [...endedAt.values()];
    expect(times).toHaveLength(STREAMS);
    // Spread over the drain window rather than sent at once.
    expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(DRAIN_MS * 0.3);
  }, 60_000);
});
