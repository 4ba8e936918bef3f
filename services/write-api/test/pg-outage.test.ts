import { fileURLToPath } from 'node:url';
import {
  type Database,
  migrateToLatest,
  openDatabase,
  type SeededMember,
  seedTeamWithMember,
} from '@wizard-stream/db';
import { NatsServer, type ServiceProcess, spawnService, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NatsRecorder } from './support/nats-recorder.js';
import { OwnPostgres } from './support/own-postgres.js';
import { postSession, sessionBody, waitUntilReady, writeApiEnv } from './support/write-api.js';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));
const CLIENTS = 16;
const STATEMENT_TIMEOUT_MS = 1000;
const UPSERT_QUEUE_LIMIT = 32;

interface Outcome {
  status: number;
  retryAfter: string | null;
  version: number | undefined;
  elapsedMs: number;
  detail: string | undefined;
}

describe('write-api while its PostgreSQL restarts or hangs (a cluster of its own)', () => {
  let cluster: OwnPostgres;
  let seedDb: Database;
  let nats: NatsServer;
  let recorder: NatsRecorder;
  let api: ServiceProcess;
  let apiExited = false;
  let members: SeededMember[];

  beforeAll(async () => {
    [cluster, nats] = await Promise.all([OwnPostgres.create(), NatsServer.start()]);
    recorder = await NatsRecorder.connect(nats.url);
    seedDb = await openDatabase({ url: cluster.url(), poolSize: 2 });
    await migrateToLatest(seedDb.db);
    members = [];
    for (let index = 0; index < CLIENTS; index++) {
      members.push(
        await seedTeamWithMember(seedDb.db, {
          teamName: `outage ${index}`,
          email: `outage-${index}@example.test`,
          firstName: 'Ada',
        }),
      );
    }
    // As its own process, the way production runs it: an uncaught error during the outage ends it.
    api = await spawnService(
      MAIN,
      writeApiEnv(nats.url, {
        DATABASE_URL: cluster.url(),
        STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        UPSERT_QUEUE_LIMIT: String(UPSERT_QUEUE_LIMIT),
        RELAY_INTERVAL_MS: '100',
        RELAY_GRACE_MS: '300',
        RATE_LIMIT_PER_MIN: '1000000',
        // Credentials checked once stay valid through the outage, so the pushes reach the upsert.
        AUTH_CACHE_MS: '600000',
      }),
    );
    void api.exited.then(() => {
      apiExited = true;
    });
    await waitUntilReady(api.url);
  }, 120_000);

  afterAll(async () => {
    cluster?.resume();
    await api?.kill('SIGTERM');
    await recorder?.close();
    await nats?.stop();
    await seedDb?.close();
    await cluster?.destroy();
  }, 60_000);

  async function push(
    member: SeededMember,
    sessionId: string,
    body = sessionBody(sessionId),
  ): Promise<Outcome> {
    const started = Date.now();
    try {
      const response = await postSession(api.url, member, body);
      const json = JSON.parse(response.text) as { version?: number; detail?: string };
      return {
        status: response.status,
        retryAfter: response.headers.get('retry-after'),
        version: response.status < 300 ? json.version : undefined,
        elapsedMs: Date.now() - started,
        detail: json.detail,
      };
    } catch (error) {
      throw new Error(`push of ${sessionId} failed without an HTTP answer:\n${api.output().slice(-2000)}`, {
        cause: error,
      });
    }
  }

  it(`answers ${CLIENTS} pushing clients with 2xx or 503 + Retry-After through a restart, and delivers every 2xx`, async () => {
    const outcomes = new Map<string, Outcome[]>();
    let stop = false;
    const clients = members.map(async (member, index) => {
      const sessionId = `restart-client-${index}`;
      const seen: Outcome[] = [];
      outcomes.set(sessionId, seen);
      while (!stop) seen.push(await push(member, sessionId));
    });
    const all = () => [...outcomes.values()].flat();
    const count = (predicate: (outcome: Outcome) => boolean) => all().filter(predicate).length;

    try {
      await until(() => count((outcome) => outcome.status < 300) >= 50, {
        what: '50 pushes before the restart',
      });
      await cluster.stop();
      await until(() => count((outcome) => outcome.status === 503) >= CLIENTS, {
        what: 'pushes during the outage to get 503',
      });
      const okBeforeRestart = count((outcome) => outcome.status < 300);
      await cluster.start();
      await until(() => count((outcome) => outcome.status < 300) >= okBeforeRestart + 50, {
        timeoutMs: 30_000,
        what: '50 pushes after the restart',
      });
    } finally {
      stop = true;
      await Promise.all(clients);
    }

    // Still the same process: nothing during the outage was an uncaught error.
    expect(apiExited, api.output().slice(-2000)).toBe(false);
    const statuses = new Set(all().map((outcome) => outcome.status));
    expect(
      [...statuses].every((status) => [200, 201, 503].includes(status)),
      [...statuses].join(),
    ).toBe(true);
    for (const outcome of all().filter((candidate) => candidate.status === 503)) {
      expect(Number(outcome.retryAfter)).toBeGreaterThan(0);
    }

    for (const [sessionId, seen] of outcomes) {
      const acknowledged = Math.max(0, ...seen.map((outcome) => outcome.version ?? 0));
      const row = await seedDb.db
        .selectFrom('wizard_sessions')
        .select('version')
        .where('session_id', '=', sessionId)
        .executeTakeFirstOrThrow();
      // Every acknowledged version is committed, and the session's newest version reaches its subject.
      expect(row.version, sessionId).toBeGreaterThanOrEqual(acknowledged);
      await recorder.waitFor(sessionId, { version: row.version, timeoutMs: 15_000 });
    }
  }, 120_000);

  it('answers 503 + Retry-After within the statement timeout while the database hangs, shedding what the queue cannot hold', async () => {
    const [member] = members as [SeededMember];
    expect((await push(member, 'before-the-hang')).status).toBeLessThan(300);
    await cluster.pause();
    let outcomes: Outcome[];
    try {
      outcomes = await Promise.all(
        Array.from({ length: 100 }, (_, index) =>
          push(members[index % CLIENTS] as SeededMember, `hung-${index}`),
        ),
      );
    } finally {
      cluster.resume();
    }
    for (const outcome of outcomes) {
      expect(outcome.status).toBe(503);
      expect(Number(outcome.retryAfter)).toBeGreaterThan(0);
      // One statement timeout (and the wait for its connection) bounds every push, queued or not.
      expect(outcome.elapsedMs).toBeLessThan(2 * STATEMENT_TIMEOUT_MS + 1500);
    }
    // Beyond UPSERT_QUEUE_LIMIT waiting pushes, the rest were refused at once instead of queued.
    expect(outcomes.filter((outcome) => outcome.detail?.includes('already waiting')).length).toBeGreaterThan(
      0,
    );

    await until(async () => (await push(member, 'after-the-hang')).status < 300, {
      timeoutMs: 20_000,
      what: 'pushes to succeed once the database answers again',
    });
  }, 60_000);
});
