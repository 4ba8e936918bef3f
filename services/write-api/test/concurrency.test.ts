import { sessionDtoSchema } from '@wizard-stream/contracts';
import type { SeededMember } from '@wizard-stream/db';
import { createTestDatabase, DIALECTS, NatsServer, type TestDatabase, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningWriteApi } from '../src/index.js';
import { NatsRecorder } from './support/nats-recorder.js';
import {
  postSession,
  seedMember,
  sessionBody,
  startTestWriteApi,
  storedVersions,
  waitUntilReady,
} from './support/write-api.js';

const PUSHES = 50;

describe.each(DIALECTS)('concurrent first pushes of one session (%s)', (dialect) => {
  let database: TestDatabase;
  let nats: NatsServer;
  let recorder: NatsRecorder;
  let api: RunningWriteApi;
  let member: SeededMember;

  beforeAll(async () => {
    [database, nats] = await Promise.all([createTestDatabase(dialect), NatsServer.start()]);
    recorder = await NatsRecorder.connect(nats.url);
    api = await startTestWriteApi(database, nats.url, { RATE_LIMIT_PER_MIN: '100000' });
    member = await seedMember(database);
    await waitUntilReady(api.url);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await recorder?.close();
    await nats?.stop();
    await database?.dispose();
  });

  it(`${PUSHES} simultaneous pushes of a new session_id all succeed, one row, versions 1..${PUSHES} once each`, async () => {
    const sessionId = 'raced-first-push';
    const responses = await Promise.all(
      Array.from({ length: PUSHES }, (_, index) =>
        postSession(
          api.url,
          member,
          sessionBody(sessionId, { tasks: [{ id: '0', title: `push ${index}`, status: 'in_progress' }] }),
        ),
      ),
    );
    const statuses = responses.map((response) => response.status);
    expect(statuses.filter((status) => status === 201)).toHaveLength(1);
    expect(statuses.filter((status) => status === 200)).toHaveLength(PUSHES - 1);

    const expectedVersions = Array.from({ length: PUSHES }, (_, index) => String(index + 1));
    const responseVersions = responses.map(
      (response) => sessionDtoSchema.parse(JSON.parse(response.text)).version,
    );
    expect(responseVersions.map(String).sort((a, b) => Number(a) - Number(b))).toEqual(expectedVersions);
    const created = responses.find((response) => response.status === 201);
    expect(created && JSON.parse(created.text).version).toBe(1);

    const rows = await database.db
      .selectFrom('wizard_sessions')
      .select(['version'])
      .where('team_id', '=', member.teamId)
      .where('session_id', '=', sessionId)
      .execute();
    expect(rows).toEqual([{ version: PUSHES }]);

    await until(() => recorder.forSession(sessionId).length >= PUSHES, {
      what: `${PUSHES} NATS messages for ${sessionId}`,
    });
    // Once the last version is confirmed the relay has nothing to resend; a barrier then flushes
    // anything else this publisher sent.
    await until(
      async () => (await storedVersions(database, member.teamId, sessionId))?.published_version === PUSHES,
      {
        what: 'the publish marker to reach the last version',
      },
    );
    const barrier = await postSession(api.url, member, sessionBody('barrier'));
    expect(barrier.status).toBe(201);
    await recorder.waitFor('barrier');

    const published = recorder
      .forSession(sessionId)
      .map((message) => message.headers['Wizard-Version'] ?? '');
    expect(published.sort((a, b) => Number(a) - Number(b))).toEqual(expectedVersions);
    // Each message carries the state of its own version, the same bytes as that version's response.
    for (const message of recorder.forSession(sessionId)) {
      const response = responses.find(
        (candidate) => JSON.parse(candidate.text).version === Number(message.headers['Wizard-Version']),
      );
      expect(message.text).toBe(response?.text);
    }
  }, 60_000);
});
