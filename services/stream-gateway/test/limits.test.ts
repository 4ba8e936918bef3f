import { generateApiKey } from '@wizard-stream/db';
import { loadWriteApiConfig, type RunningWriteApi, startWriteApi } from '@wizard-stream/write-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { HoldingProxy } from './support/hold-proxy.js';
import { openAndRead, openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

/**
 * Per-principal limits on the stream path (docs/api.md#stream): streams per key and gateway, connects
 * charged to the key's rate limit, waiting connects counted and bounded in time, failed authentication
 * throttled per client address; one team at its limits leaves the others' connects untouched.
 */
describe('stream limits per key and per address (postgres)', () => {
  let stack: TestStack;
  const streams: SseStream[] = [];

  beforeAll(async () => {
    stack = await TestStack.start('postgres');
  }, 60_000);

  afterAll(async () => {
    for (const stream of streams) stream.close();
    await stack?.close();
  }, 30_000);

  const url = (gateway: { url: string }, teamId: number, workflow = 'wf-limits') =>
    stack.streamUrl(gateway.url, teamId, workflow);

  async function connect(target: string, key: string, headers: Record<string, string> = {}) {
    const stream = await openStream(target, { authorization: `Bearer ${key}`, ...headers });
    streams.push(stream);
    if (stream.status !== 200) await stream.whenClosed;
    return stream;
  }

  it('holds at most MAX_STREAMS_PER_KEY streams of one key per gateway: 30 connects on two gateways open 20', async () => {
    const [team, otherTeam] = stack.teams;
    const gateways = [
      await stack.startGateway({ MAX_STREAMS_PER_KEY: '10' }),
      await stack.startGateway({ MAX_STREAMS_PER_KEY: '10' }),
    ];
    const attempts = await Promise.all(
      Array.from({ length: 30 }, (_, index) =>
        connect(url(gateways[index % 2] as RunningStreamGateway, team.teamId), team.apiKey),
      ),
    );
    const opened = attempts.filter((stream) => stream.status === 200);
    const refused = attempts.filter((stream) => stream.status !== 200);
    expect(opened).toHaveLength(20);
    for (const stream of refused) {
      expect(stream.status).toBe(429);
      expect(Number(stream.headers['retry-after'])).toBeGreaterThan(0);
      expect(JSON.parse(stream.body).code).toBe('throttled');
    }
    for (const gateway of gateways) expect(gateway.state.registry.size).toBe(10);
    // Another team connects on both.
    for (const gateway of gateways) {
      expect((await connect(url(gateway, otherTeam.teamId), otherTeam.apiKey)).status).toBe(200);
    }
    for (const stream of opened) stream.close();
  }, 60_000);

  it('never lets one key fill a gateway: 130 connects with MAX_STREAMS=60 leave room for team 2', async () => {
    const [team, otherTeam] = stack.teams;
    const gateway = await stack.startGateway({ MAX_STREAMS: '60' });
    const attempts = await Promise.all(
      Array.from({ length: 130 }, () => connect(url(gateway, team.teamId, 'wf-fill'), team.apiKey)),
    );
    const opened = attempts.filter((stream) => stream.status === 200);
    expect(opened.length).toBeGreaterThan(0);
    expect(opened.length).toBeLessThanOrEqual(30);
    expect(attempts.every((stream) => stream.status === 200 || stream.status === 429)).toBe(true);
    const second = await connect(url(gateway, otherTeam.teamId, 'wf-fill'), otherTeam.apiKey);
    expect(second.status).toBe(200);
    for (const stream of opened) stream.close();
  }, 60_000);

  it('charges every connect to the key’s rate limit, coalesced snapshot calls included', async () => {
    const [team] = stack.teams;
    let limited: RunningWriteApi | undefined;
    try {
      limited = await startWriteApi(
        loadWriteApiConfig({
          ...TestStack.writeApiEnv(stack.nats, stack.database),
          RATE_LIMIT_PER_MIN: '20',
        }),
        { database: stack.database },
      );
      const gateway = await stack.startGateway({ WRITE_API_URL: limited.url });
      const attempts = await Promise.all(
        Array.from({ length: 30 }, () => connect(url(gateway, team.teamId, 'wf-rate'), team.apiKey)),
      );
      const opened = attempts.filter((stream) => stream.status === 200);
      expect(opened.length).toBeLessThanOrEqual(20);
      const refused = attempts.filter((stream) => stream.status === 429);
      expect(refused.length).toBe(30 - opened.length);
      for (const stream of refused) expect(Number(stream.headers['retry-after'])).toBeGreaterThan(0);
      for (const stream of opened) stream.close();
    } finally {
      await limited?.close();
    }
  }, 60_000);

  it('counts connects still waiting for their snapshot, and frees their slots after SNAPSHOT_TIMEOUT_MS', async () => {
    const [team, otherTeam] = stack.teams;
    const proxy = await HoldingProxy.start(stack.writeApi.url);
    try {
      const gateway = await stack.startGateway({
        WRITE_API_URL: proxy.url,
        MAX_STREAMS_PER_KEY: '2',
        SNAPSHOT_TIMEOUT_MS: '1500',
      });
      proxy.holding = true;
      const waiting = [
        connect(url(gateway, team.teamId, 'wf-wait-a'), team.apiKey),
        connect(url(gateway, team.teamId, 'wf-wait-b'), team.apiKey),
      ];
      await proxy.waitForHeld(2);
      // Both wait for write-api: the key's third connect is refused at once, without a snapshot call.
      const third = await connect(url(gateway, team.teamId, 'wf-wait-c'), team.apiKey);
      expect(third.status).toBe(429);
      expect(proxy.latestCalls).toBe(2);
      expect(gateway.state.registry.size).toBe(2);
      // The waiting ones give up after SNAPSHOT_TIMEOUT_MS (503), whatever write-api does.
      for (const stream of await Promise.all(waiting)) expect(stream.status).toBe(503);
      expect(gateway.state.registry.size).toBe(0);
      proxy.release();
      expect((await connect(url(gateway, team.teamId, 'wf-wait-a'), team.apiKey)).status).toBe(200);
      expect((await connect(url(gateway, otherTeam.teamId, 'wf-wait-a'), otherTeam.apiKey)).status).toBe(200);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('throttles failed authentication per client address before it costs a snapshot call', async () => {
    const [team] = stack.teams;
    const proxy = await HoldingProxy.start(stack.writeApi.url);
    try {
      const gateway = await stack.startGateway({ WRITE_API_URL: proxy.url, AUTH_FAILURES_PER_MIN: '3' });
      const guesser = { 'x-forwarded-for': '192.0.2.7' };
      for (let attempt = 0; attempt < 3; attempt++) {
        const refused = await openAndRead(url(gateway, team.teamId), {
          authorization: `Bearer ${generateApiKey()}`,
          ...guesser,
        });
        expect(refused.status).toBe(401);
      }
      expect(proxy.latestCalls).toBe(3);
      for (let attempt = 0; attempt < 20; attempt++) {
        const throttled = await openAndRead(url(gateway, team.teamId), {
          authorization: `Bearer ${generateApiKey()}`,
          ...guesser,
        });
        expect(throttled.status).toBe(429);
        expect(Number(throttled.headers['retry-after'])).toBeGreaterThan(0);
      }
      // Malformed credentials are refused by the gateway itself, never forwarded.
      const malformed = await openAndRead(url(gateway, team.teamId), {
        authorization: 'Bearer wsk_not-a-key',
        'x-forwarded-for': '192.0.2.8',
      });
      expect(malformed.status).toBe(401);
      expect(proxy.latestCalls).toBe(3);
      // Another address, a valid key: streams.
      const other = await connect(url(gateway, team.teamId), team.apiKey, { 'x-forwarded-for': '192.0.2.9' });
      expect(other.status).toBe(200);
      other.close();
    } finally {
      await proxy.close();
    }
  }, 60_000);
});
