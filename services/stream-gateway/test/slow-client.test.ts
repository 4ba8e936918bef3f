import { fileURLToPath } from 'node:url';
import { formatSessionFrame } from '@wizard-stream/contracts';
import { type ServiceProcess, spawnService, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStream, type SseStream } from './support/sse-client.js';
import { syntheticSession, TestStack } from './support/stack.js';

const GATEWAY_MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const SLOW_CLIENT_MS = 4000;
const UPDATES = 1000;
const PAYLOAD_BYTES = 16 * 1024;
const HEAP_GROWTH_LIMIT_BYTES = 64 * 1024 * 1024;
/** Five connections, each with at most one frame past the socket's high-water mark and one held frame. */
const BUFFERED_LIMIT_BYTES = 1024 * 1024;
/** The documented default of MAX_CLIENT_BUFFER_BYTES, which the budget test leaves unset. */
const DEFAULT_CLIENT_BUDGET_BYTES = 4 * 1024 * 1024;
const WORKFLOW_SESSIONS = 20;
const LARGE_PAYLOAD_BYTES = 900 * 1024;
/** Rounds of updates to all twenty sessions at most; the budget is passed within the first one or two. */
const MAX_ROUNDS = 6;

async function metric(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text
    .split('\n')
    .find((candidate) => candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `));
  if (!line) throw new Error(`metric ${name} not found`);
  return Number(line.split(' ').at(-1));
}

describe('slow client (gateway as a child process)', () => {
  let stack: TestStack;
  let gateway: ServiceProcess | undefined;
  let budgetGateway: ServiceProcess | undefined;
  const open: SseStream[] = [];

  beforeAll(async () => {
    stack = await TestStack.start('postgres');
  }, 60_000);

  afterAll(async () => {
    for (const stream of open) stream.close();
    await gateway?.kill('SIGKILL');
    await budgetGateway?.kill('SIGKILL');
    await stack?.close();
  }, 30_000);

  it(`one paused client does not delay the others through ${UPDATES} updates of 16 KiB, stays bounded, and is closed`, async () => {
    const team = stack.teams[0];
    const route = { workflowId: 'wf-slow', skillId: 's', sessionId: 'slow-1' };
    gateway = await spawnService(GATEWAY_MAIN, stack.gatewayEnv({ SLOW_CLIENT_MS: String(SLOW_CLIENT_MS) }));
    const running = gateway;
    await until(async () => (await fetch(`${running.url}/readyz`)).status === 200, { what: 'gateway ready' });
    const url = stack.streamUrl(running.url, team.teamId, route.workflowId, route.skillId);
    const headers = { authorization: `Bearer ${team.apiKey}` };

    const slow = await openStream(url, headers);
    const fast = await Promise.all(Array.from({ length: 4 }, () => openStream(url, headers)));
    open.push(slow, ...fast);
    for (const stream of [slow, ...fast]) expect(stream.status).toBe(200);
    slow.pause();
    const memory = async () =>
      (await metric(running.url, 'nodejs_heap_size_used_bytes')) +
      (await metric(running.url, 'nodejs_external_memory_bytes'));
    const memoryBefore = await memory();
    let maxBuffered = 0;

    const startedAt = Date.now();
    for (let version = 1; version <= UPDATES; version++) {
      await stack.publishRaw(
        team.teamId,
        route.workflowId,
        route.skillId,
        route.sessionId,
        version,
        syntheticSession(
          team.teamId,
          route.workflowId,
          route.skillId,
          route.sessionId,
          version,
          PAYLOAD_BYTES,
        ),
      );
      if (version % 100 === 0) {
        await stack.flushPublisher();
        maxBuffered = Math.max(maxBuffered, await metric(running.url, 'wizard_gateway_buffered_bytes'));
      }
    }
    await stack.flushPublisher();
    const publishedAt = Date.now();

    for (const stream of fast) {
      await stream.waitFor(() => stream.latestVersion(route.sessionId) === UPDATES, {
        timeoutMs: 2000 + (Date.now() - publishedAt),
        what: 'the final state on a reading client',
      });
      const versions = stream.sessions.map((session) => session.version);
      for (let index = 1; index < versions.length; index++) {
        expect(versions[index]).toBeGreaterThan(versions[index - 1] as number);
      }
    }
    const deliveredWithinMs = Date.now() - publishedAt;
    expect(deliveredWithinMs).toBeLessThan(2000);

    maxBuffered = Math.max(maxBuffered, await metric(running.url, 'wizard_gateway_buffered_bytes'));
    const memoryGrowth = (await memory()) - memoryBefore;
    const rss = await metric(running.url, 'process_resident_memory_bytes');
    expect(memoryGrowth).toBeLessThan(HEAP_GROWTH_LIMIT_BYTES);
    // The sharp bound: what waits for clients stays a few frames, not the ~16 MiB that was published.
    expect(maxBuffered).toBeGreaterThan(PAYLOAD_BYTES);
    expect(maxBuffered).toBeLessThan(BUFFERED_LIMIT_BYTES);

    // A paused socket cannot see its own close, so the close is observed on the gateway, then confirmed
    // by letting the client read again: it reaches the end of what was sent and the socket is closed.
    await until(async () => (await metric(running.url, 'wizard_gateway_slow_client_closes_total')) === 1, {
      timeoutMs: SLOW_CLIENT_MS + 5000,
      what: 'the slow client closed by the gateway',
    });
    const closedAfterMs = Date.now() - startedAt;
    expect(closedAfterMs).toBeGreaterThanOrEqual(SLOW_CLIENT_MS);
    expect(await metric(running.url, 'wizard_gateway_open_streams')).toBe(fast.length);
    slow.response.resume();
    await slow.waitFor(() => slow.closed, {
      timeoutMs: 5000,
      what: 'the slow client sees its socket closed',
    });
    expect(slow.latestVersion(route.sessionId)).toBeLessThan(UPDATES);
    expect(await metric(running.url, 'wizard_gateway_frames_conflated_total')).toBeGreaterThan(0);
    console.info(
      `slow-client: final state on reading clients ${deliveredWithinMs} ms after the last publish; ` +
        `heap+external growth ${(memoryGrowth / 1048576).toFixed(1)} MiB; max buffered ${(maxBuffered / 1024).toFixed(0)} KiB; rss ${(rss / 1048576).toFixed(0)} MiB; ` +
        `slow client closed ${closedAfterMs} ms after the first publish`,
    );
  }, 90_000);

  it(`closes a paused client of a workflow whose ${WORKFLOW_SESSIONS} sessions change with 900 KB frames once it holds MAX_CLIENT_BUFFER_BYTES; the others get every final version`, async () => {
    const team = stack.teams[1];
    const workflowId = 'wf-budget';
    const sessions = Array.from({ length: WORKFLOW_SESSIONS }, (_, index) => `budget-${index}`);
    // The timer cannot be what closes the slow client here: only the byte budget can.
    budgetGateway = await spawnService(GATEWAY_MAIN, stack.gatewayEnv({ SLOW_CLIENT_MS: '600000' }));
    const running = budgetGateway;
    await until(async () => (await fetch(`${running.url}/readyz`)).status === 200, { what: 'gateway ready' });
    const url = stack.streamUrl(running.url, team.teamId, workflowId);
    const headers = { authorization: `Bearer ${team.apiKey}` };
    const slow = await openStream(url, headers);
    const fast = await Promise.all(Array.from({ length: 3 }, () => openStream(url, headers)));
    open.push(slow, ...fast);
    for (const stream of [slow, ...fast]) expect(stream.status).toBe(200);
    slow.pause();

    let frameBytes = 0;
    let maxBuffered = 0;
    let closedInRound = 0;
    let round = 0;
    // Updates go one at a time: each is sampled once every reading client has it, so the readers' own
    // sockets are empty and the gauge shows what waits for the paused client alone.
    while (round < MAX_ROUNDS && (closedInRound === 0 || round === closedInRound)) {
      round++;
      for (const sessionId of sessions) {
        const payload = syntheticSession(team.teamId, workflowId, 's', sessionId, round, LARGE_PAYLOAD_BYTES);
        frameBytes = Math.max(frameBytes, Buffer.byteLength(formatSessionFrame(round, sessionId, payload)));
        await stack.publishRaw(team.teamId, workflowId, 's', sessionId, round, payload);
        await stack.flushPublisher();
        for (const stream of fast) {
          await stream.waitFor(() => stream.latestVersion(sessionId) === round, {
            what: `${sessionId} v${round} on a reading client`,
          });
        }
        maxBuffered = Math.max(maxBuffered, await metric(running.url, 'wizard_gateway_buffered_bytes'));
      }
      if (closedInRound === 0 && (await metric(running.url, 'wizard_gateway_slow_client_closes_total')) > 0) {
        closedInRound = round;
      }
    }

    // Without the budget the paused client would hold one frame per session: twenty of them, 18 MB.
    expect(maxBuffered).toBeGreaterThan(frameBytes);
    expect(maxBuffered).toBeLessThanOrEqual(DEFAULT_CLIENT_BUDGET_BYTES + frameBytes);
    expect(closedInRound).toBeGreaterThan(0);
    expect(await metric(running.url, 'wizard_gateway_slow_client_closes_total')).toBe(1);
    expect(await metric(running.url, 'wizard_gateway_open_streams')).toBe(fast.length);
    expect(await metric(running.url, 'wizard_gateway_buffered_bytes')).toBeLessThan(frameBytes);
    for (const stream of fast) {
      for (const sessionId of sessions) expect(stream.latestVersion(sessionId)).toBe(round);
      expect(stream.closed).toBe(false);
    }
    slow.response.resume();
    await slow.waitFor(() => slow.closed, { what: 'the paused client sees its socket closed' });
    expect(sessions.every((sessionId) => slow.latestVersion(sessionId) === round)).toBe(false);
    console.info(
      `slow-client budget: closed in round ${closedInRound} of ${round}; max buffered ${(maxBuffered / 1048576).toFixed(2)} MiB ` +
        `(budget ${DEFAULT_CLIENT_BUDGET_BYTES / 1048576} MiB + a ${(frameBytes / 1024).toFixed(0)} KiB frame)`,
    );
  }, 120_000);
});
