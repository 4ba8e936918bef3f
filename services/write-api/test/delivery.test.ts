import { fileURLToPath } from 'node:url';
import { sessionDtoSchema } from '@wizard-stream/contracts';
import type { SeededMember } from '@wizard-stream/db';
import {
  createTestDatabase,
  DIALECTS,
  NatsServer,
  type ServiceProcess,
  spawnService,
  type TestDatabase,
  until,
} from '@wizard-stream/testkit';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import { NatsRecorder } from './support/nats-recorder.js';
import {
  postSession,
  seedMember,
  sessionBody,
  startTestWriteApi,
  storedVersions,
  waitForNats,
  waitUntilReady,
  writeApiEnv,
} from './support/write-api.js';

const DELIVERY_DEADLINE_MS = 10_000;
/** A relay that looks often and leaves a version alone only briefly, so the test needs no long waits. */
const FAST_RELAY = { RELAY_INTERVAL_MS: '100', RELAY_GRACE_MS: '300' };
const CRASH_ENTRY = fileURLToPath(new URL('./support/crash-after-commit.ts', import.meta.url));

describe.each(DIALECTS)('delivery through a NATS outage (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  let member: SeededMember;
  let recorder: NatsRecorder | undefined;

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    api = await startTestWriteApi(database, nats.url, FAST_RELAY);
    member = await seedMember(database);
    await waitUntilReady(api.url);
  }, 60_000);

  afterAll(async () => {
    await recorder?.close();
    await api?.close();
    await nats?.stop();
    await database?.dispose();
  });

  it('publishes a change committed while NATS was down within 10 s of its return', async () => {
    const sessionId = 'committed-during-outage';
    await nats.stop();
    await waitForNats(api.url, false);

    const response = await postSession(api.url, member, sessionBody(sessionId));
    expect(response.status).toBe(201);
    expect(await storedVersions(database, member.teamId, sessionId)).toEqual({
      version: 1,
      published_version: 0,
    });

    await nats.restart();
    const restartedAt = Date.now();
    // A subscriber that arrives after the outage: only a publish made after the return can reach it.
    recorder = await NatsRecorder.connect(nats.url);
    const message = await recorder.waitFor(sessionId, { version: 1, timeoutMs: DELIVERY_DEADLINE_MS });
    expect(message.receivedAt - restartedAt).toBeLessThan(DELIVERY_DEADLINE_MS);
    expect(sessionDtoSchema.parse(JSON.parse(message.text))).toEqual(JSON.parse(response.text));
    await until(
      async () => (await storedVersions(database, member.teamId, sessionId))?.published_version === 1,
      { what: 'the publish marker to record the relayed version' },
    );
  }, 30_000);
});

describe('delivery after a crash between commit and publish (postgres only: PGlite cannot be shared by two processes)', () => {
  let database: TestDatabase;
  let nats: NatsServer;
  let recorder: NatsRecorder;
  let member: SeededMember;
  let crashing: ServiceProcess | undefined;
  let survivor: RunningWriteApi | undefined;

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase('postgres'), NatsServer.start()]);
    recorder = await NatsRecorder.connect(nats.url);
    member = await seedMember(database);
  }, 60_000);

  afterEach(async () => {
    await crashing?.kill('SIGKILL');
    await survivor?.close();
  });

  afterAll(async () => {
    await recorder?.close();
    await nats?.stop();
    await database?.dispose();
  });

  it("another instance's relay publishes what the killed process committed", async () => {
    const sessionId = 'committed-then-killed';
    crashing = await spawnService(
      CRASH_ENTRY,
      writeApiEnv(nats.url, { ...FAST_RELAY, DATABASE_URL: database.url ?? '', LOG_LEVEL: 'warn' }),
    );
    await waitUntilReady(crashing.url);

    // The process kills itself inside the request, so the client sees its connection drop.
    await expect(postSession(crashing.url, member, sessionBody(sessionId))).rejects.toThrow();
    const exit = await crashing.exited;
    expect(exit.signal).toBe('SIGKILL');

    // Committed, never published: the subscriber was connected all along and saw nothing.
    expect(await storedVersions(database, member.teamId, sessionId)).toEqual({
      version: 1,
      published_version: 0,
    });
    expect(recorder.forSession(sessionId)).toHaveLength(0);

    const survivorStarted = Date.now();
    survivor = await startTestWriteApi(database, nats.url, FAST_RELAY);
    const message = await recorder.waitFor(sessionId, { version: 1, timeoutMs: DELIVERY_DEADLINE_MS });
    expect(message.receivedAt - survivorStarted).toBeLessThan(DELIVERY_DEADLINE_MS);
    const dto = sessionDtoSchema.parse(JSON.parse(message.text));
    expect(dto).toMatchObject({
      session_id: sessionId,
      team_id: member.teamId,
      version: 1,
      run_phase: 'running',
    });
    expect(message.subject).toBe(`wizard.${member.teamId}.posthog-integration.nextjs`);
    await until(
      async () => (await storedVersions(database, member.teamId, sessionId))?.published_version === 1,
      { what: 'the publish marker to record the relayed version' },
    );
  }, 60_000);
});
