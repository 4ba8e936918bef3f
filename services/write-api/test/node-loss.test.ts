import { connect, type NatsConnection } from '@nats-io/transport-node';
import type { SeededMember } from '@wizard-stream/db';
import {
  createTestDatabase,
  DIALECTS,
  freePort,
  NatsServer,
  type TestDatabase,
  until,
} from '@wizard-stream/testkit';
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

/**
 * Core NATS confirms a flush before the node has passed the messages on to its cluster peers, so a node
 * killed right after confirming can take them with it. write-api then publishes again, on the node it
 * reconnects to, what was confirmed just before the disconnect (docs/delivery.md#guarantee).
 */
describe.each(DIALECTS)('a NATS node lost right after it confirmed a publish (%s)', (dialect) => {
  let database: TestDatabase;
  let nodeA: NatsServer;
  let nodeB: NatsServer;
  let api: RunningWriteApi;
  let member: SeededMember;
  let recorder: NatsRecorder;

  beforeAll(async () => {
    const [routeA, routeB] = [await freePort(), await freePort()];
    database = await createTestDatabase(dialect);
    // One at a time, each assigned as soon as it runs, so that afterAll stops whatever did start.
    nodeA = await NatsServer.start({
      serverName: 'a',
      cluster: { name: 'node-loss', port: routeA, routes: [`nats://127.0.0.1:${routeB}`] },
    });
    nodeB = await NatsServer.start({
      serverName: 'b',
      cluster: { name: 'node-loss', port: routeB, routes: [`nats://127.0.0.1:${routeA}`] },
    });
    recorder = await NatsRecorder.connect(nodeB.url);
    await awaitRoute(nodeA.url, recorder);
    // Only node A's URL: the client learns node B from the cluster and fails over to it.
    api = await startTestWriteApi(database, nodeA.url);
    member = await seedMember(database);
    await waitUntilReady(api.url);
  }, 60_000);

  afterAll(async () => {
    await recorder?.close();
    await api?.close();
    await Promise.all([nodeA?.stop(), nodeB?.stop()]);
    await database?.dispose();
  });

  it('publishes the versions node A confirmed just before it died again through node B', async () => {
    const sessionId = 'confirmed-then-lost';
    const response = await postSession(api.url, member, sessionBody(sessionId));
    expect(response.status).toBe(201);
    await until(
      async () => (await storedVersions(database, member.teamId, sessionId))?.published_version === 1,
      {
        what: 'node A to confirm version 1',
      },
    );
    const versionOne = () =>
      recorder.forSession(sessionId).filter((message) => message.headers['Wizard-Version'] === '1');
    await until(() => versionOne().length === 1, { what: 'version 1 to cross the route to node B' });

    await nodeA.stop();
    await until(() => versionOne().length >= 2, {
      timeoutMs: 10_000,
      what: 'version 1 published again through node B after the failover',
    });
    expect(JSON.parse(versionOne()[1]?.text ?? '{}')).toEqual(JSON.parse(response.text));
  }, 30_000);
});

/** Resolves once a message published on node A reaches the subscriber on node B (the route is up). */
async function awaitRoute(urlA: string, recorder: NatsRecorder): Promise<void> {
  const publisher: NatsConnection = await connect({ servers: urlA, name: 'route-probe' });
  try {
    await until(
      async () => {
        publisher.publish('wizard.0.route-probe.probe', 'probe');
        await publisher.flush();
        return recorder.messages.some((message) => message.subject === 'wizard.0.route-probe.probe');
      },
      { timeoutMs: 10_000, what: 'the route between node A and node B' },
    );
  } finally {
    await publisher.close();
  }
}
