import { NATS_HEADERS, sessionSubject } from '@wizard-stream/contracts';
import { NatsServer, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BusConnection,
  confirmPublished,
  NotConnectedError,
  publishSession,
  type SessionMessage,
  subscribeSessions,
} from '../src/index.js';

describe('bus over a real nats-server', () => {
  let nats: NatsServer;
  let publisher: BusConnection;
  let subscriber: BusConnection;

  beforeAll(async () => {
    nats = await NatsServer.start();
    publisher = new BusConnection({ url: nats.url, name: 'test-publisher' });
    subscriber = new BusConnection({ url: nats.url, name: 'test-subscriber' });
    await Promise.all([publisher.ready(), subscriber.ready()]);
  });
  afterAll(async () => {
    await publisher?.close();
    await subscriber?.close();
    await nats?.stop();
  });

  it('publishes the payload bytes with the headers of docs/wire-format.md#nats', async () => {
    const subject = sessionSubject(7, 'posthog.integration', 'next.js');
    const received: SessionMessage[] = [];
    const subscription = await subscribeSessions(subscriber, 'wizard.7.*.*', (message) =>
      received.push(message),
    );
    await subscriber.nats?.flush();
    const payload = '{"session_id":"s:1","version":3}';
    publishSession(publisher, {
      subject,
      payload,
      sessionId: 's:1',
      version: 3,
      committedAtMs: 1_795_000_000_123,
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    await confirmPublished(publisher, 2000);
    await until(() => received.length === 1, { what: 'the published message' });
    const [message] = received;
    expect(message?.subject).toBe('wizard.7.posthog%2Eintegration.next%2Ejs');
    expect(message?.sessionId).toBe('s:1');
    expect(message?.version).toBe(3);
    expect(message?.committedAtMs).toBe(1_795_000_000_123);
    expect(message?.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(new TextDecoder().decode(message?.payload)).toBe(payload);
    subscription.unsubscribe();
  });

  it('passes messages without session headers to onInvalid instead of onMessage', async () => {
    const valid: SessionMessage[] = [];
    const invalid: string[] = [];
    const subscription = await subscribeSessions(
      subscriber,
      'wizard.8.>',
      (message) => valid.push(message),
      (subject) => invalid.push(subject),
    );
    await subscriber.nats?.flush();
    publisher.nats?.publish('wizard.8.a.b', 'no headers');
    await publisher.nats?.flush();
    await until(() => invalid.length === 1, { what: 'the headerless message' });
    expect(valid).toHaveLength(0);
    expect(invalid).toEqual(['wizard.8.a.b']);
    expect(NATS_HEADERS.version).toBe('Wizard-Version');
    subscription.unsubscribe();
  });

  it('reports a lost server and calls reconnect listeners when it returns', async () => {
    let reconnects = 0;
    const stopListening = subscriber.onReconnect(() => {
      reconnects++;
    });
    expect(subscriber.isConnected()).toBe(true);
    await nats.stop();
    await until(() => !subscriber.isConnected(), { what: 'the disconnect to be noticed' });
    await nats.restart();
    await until(() => reconnects === 1 && subscriber.isConnected(), {
      what: 'the reconnect',
      timeoutMs: 15_000,
    });
    stopListening();
  });

  it('refuses to publish before the first connection instead of buffering silently', async () => {
    const nowhere = new BusConnection({ url: 'nats://127.0.0.1:1', name: 'never-connects' });
    expect(nowhere.isConnected()).toBe(false);
    expect(() =>
      publishSession(nowhere, {
        subject: 'wizard.1.a.b',
        payload: '{}',
        sessionId: 's',
        version: 1,
        committedAtMs: 1,
      }),
    ).toThrow(NotConnectedError);
    await nowhere.close();
    await expect(nowhere.ready()).rejects.toThrow();
  });

  it('refuses to confirm publishes without a connection with the same NotConnectedError', async () => {
    const nowhere = new BusConnection({ url: 'nats://127.0.0.1:1', name: 'never-connects' });
    await expect(confirmPublished(nowhere, 1000)).rejects.toThrow(NotConnectedError);
    await nowhere.close();
    await expect(nowhere.ready()).rejects.toThrow();
  });
});
