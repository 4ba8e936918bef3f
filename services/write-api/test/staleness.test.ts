import type { SeededMember } from '@wizard-stream/db';
import { createTestDatabase, NatsServer, type TestDatabase, until } from '@wizard-stream/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import { NatsRecorder, type RecordedMessage } from './support/nats-recorder.js';
import {
  postSession,
  seedMember,
  sessionBody,
  startTestWriteApi,
  storedVersions,
  waitUntilReady,
} from './support/write-api.js';

const SWEEPING = { STALE_AFTER_MS: '1000', STALE_SWEEP_MS: '50' };

const isStaleMessage = (message: RecordedMessage) => JSON.parse(message.text).is_stale === true;

/** Postgres runs two replicas sweeping the same database; PGlite (one process) runs one. */
const SETUPS = [
  { dialect: 'postgres', replicas: 2 },
  { dialect: 'pglite', replicas: 1 },
] as const;

describe.each(SETUPS)(
  'staleness pushed exactly once ($dialect, $replicas replica(s) sweeping)',
  ({ dialect, replicas }) => {
    let database: TestDatabase;
    let nats: NatsServer;
    let recorder: NatsRecorder;
    let apis: RunningWriteApi[] = [];
    let member: SeededMember;
    let barriers = 0;

    /** Backdates updated_at past STALE_AFTER instead of waiting for the clock. */
    async function backdate(sessionIds: string[]): Promise<void> {
      await database.db
        .updateTable('wizard_sessions')
        .set({ updated_at: sql<Date>`now() - interval '1 minute'` })
        .where('team_id', '=', member.teamId)
        .where('session_id', 'in', sessionIds)
        .execute();
    }

    /**
     * Lets every replica sweep again (explicitly, concurrently, besides their own 50 ms timers), then
     * sends a barrier through each replica's NATS connection: any duplicate publish a replica made
     * before its barrier has arrived once the barrier has.
     */
    async function sweepAgainAndDrain(): Promise<number> {
      const transitioned = await Promise.all([1, 2, 3].flatMap(() => apis.map((api) => api.sweeper.sweep())));
      for (const api of apis) {
        barriers += 1;
        const sessionId = `barrier-${barriers}`;
        // Completed: a barrier never goes stale itself.
        const response = await postSession(
          api.url,
          member,
          sessionBody(sessionId, { run_phase: 'completed' }),
        );
        expect(response.status).toBe(201);
        await recorder.waitFor(sessionId);
      }
      return transitioned.reduce((sum, count) => sum + count, 0);
    }

    function staleVersions(sessionId: string): string[] {
      return recorder
        .forSession(sessionId)
        .filter(isStaleMessage)
        .map((message) => message.headers['Wizard-Version'] ?? '');
    }

    beforeAll(async () => {
      [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
      recorder = await NatsRecorder.connect(nats.url);
      apis = await Promise.all(
        Array.from({ length: replicas }, () => startTestWriteApi(database, nats.url, SWEEPING)),
      );
      member = await seedMember(database);
      await Promise.all(apis.map((api) => waitUntilReady(api.url)));
    }, 60_000);

    afterAll(async () => {
      await Promise.all(apis.map((api) => api.close()));
      await recorder?.close();
      await nats?.stop();
      await database?.dispose();
    });

    it('transitions running and idle sessions once, never completed or error ones, and again after a new push', async () => {
      const phases = {
        running: 'stale-running',
        idle: 'stale-idle',
        completed: 'done',
        error: 'failed',
      } as const;
      for (const [phase, sessionId] of Object.entries(phases)) {
        const response = await postSession(
          apis[0]?.url ?? '',
          member,
          sessionBody(sessionId, { run_phase: phase }),
        );
        expect(response.status).toBe(201);
        expect(JSON.parse(response.text).is_stale).toBe(false);
      }
      await backdate(Object.values(phases));

      for (const sessionId of [phases.running, phases.idle]) {
        const message = await until(() => recorder.forSession(sessionId).find(isStaleMessage), {
          what: `the stale transition of ${sessionId} on NATS`,
        });
        // The transition is a change of its own: previous version + 1.
        expect(message.headers['Wizard-Version']).toBe('2');
        expect(JSON.parse(message.text)).toMatchObject({ session_id: sessionId, version: 2, is_stale: true });
      }

      expect(await sweepAgainAndDrain()).toBe(0);
      expect(staleVersions(phases.running)).toEqual(['2']);
      expect(staleVersions(phases.idle)).toEqual(['2']);
      for (const sessionId of [phases.completed, phases.error]) {
        expect(staleVersions(sessionId)).toEqual([]);
        expect((await storedVersions(database, member.teamId, sessionId))?.version).toBe(1);
      }
      expect((await storedVersions(database, member.teamId, phases.running))?.version).toBe(2);

      // A new push makes the session fresh again, and it can go stale once more.
      const revived = await postSession(apis[replicas - 1]?.url ?? '', member, sessionBody(phases.running));
      expect(revived.status).toBe(200);
      expect(JSON.parse(revived.text)).toMatchObject({ version: 3, is_stale: false });
      await recorder.waitFor(phases.running, { version: 3 });
      await backdate([phases.running]);
      await until(() => staleVersions(phases.running).length === 2, {
        what: `the second stale transition of ${phases.running}`,
      });
      expect(await sweepAgainAndDrain()).toBe(0);
      expect(staleVersions(phases.running)).toEqual(['2', '4']);
      expect(staleVersions(phases.idle)).toEqual(['2']);
    }, 60_000);
  },
);
