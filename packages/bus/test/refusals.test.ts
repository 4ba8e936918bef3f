import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMetricsRegistry } from '@wizard-stream/telemetry';
import { NatsServer, until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BusConnection, busOptionsOf, registerBusMetrics } from '../src/index.js';

/** A nats-server with one user that may publish on `wizard.>` and subscribe to nothing but replies. */
describe('refusals by a nats-server with users and permissions', () => {
  let dir: string;
  let nats: NatsServer;
  const opened: BusConnection[] = [];
  const open = (password: string) => {
    const bus = new BusConnection({
      ...busOptionsOf({ natsUrl: nats.url, natsUser: 'publisher', natsPassword: password }),
      name: 'refusals-test',
    });
    opened.push(bus);
    return bus;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bus-refusals-'));
    const config = join(dir, 'nats.conf');
    await writeFile(
      config,
      JSON.stringify({
        authorization: {
          users: [
            {
              user: 'publisher',
              password: 'publisher-password',
              permissions: { publish: { allow: ['wizard.>'] }, subscribe: { allow: ['_INBOX.>'] } },
            },
          ],
        },
      }),
    );
    nats = await NatsServer.start({ configFile: config });
  });

  afterAll(async () => {
    await Promise.allSettled(opened.map((bus) => bus.close()));
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('counts a refused login and stays unconnected (retrying) until closed', async () => {
    const bus = open('wrong-password');
    await until(() => bus.refusals().login >= 1, { what: 'the refused login' });
    expect(bus.isConnected()).toBe(false);
    expect(bus.nats).toBeUndefined();
    await bus.close();
    await expect(bus.ready()).rejects.toThrow(/closed before it connected/);
  });

  it('exports refused publishes and subscriptions as wizard_nats_refusals_total{what}', async () => {
    const bus = open('publisher-password');
    const registry = createMetricsRegistry('bus-test');
    registerBusMetrics(bus, registry);
    const connection = await bus.ready();
    connection.publish('elsewhere.x', 'refused');
    connection.publish('elsewhere.y', 'refused');
    connection.subscribe('wizard.>');
    await until(() => bus.refusals().publish === 2 && bus.refusals().subscribe === 1, {
      what: 'two refused publishes and one refused subscription',
    });
    const text = await registry.metrics();
    expect(text).toContain('wizard_nats_refusals_total{what="login",service="bus-test"} 0');
    expect(text).toContain('wizard_nats_refusals_total{what="publish",service="bus-test"} 2');
    expect(text).toContain('wizard_nats_refusals_total{what="subscribe",service="bus-test"} 1');
    expect(bus.isConnected()).toBe(true);
  });
});

describe('busOptionsOf', () => {
  it('turns TLS on only with a CA, and passes the client certificate and login through', () => {
    expect(busOptionsOf({ natsUrl: 'nats://n:4222', natsTlsCertFile: '/c', natsTlsKeyFile: '/k' }).tls).toBe(
      undefined,
    );
    expect(
      busOptionsOf({
        natsUrl: 'nats://n:4222',
        natsUser: 'u',
        natsPassword: 'p',
        natsTlsCaFile: '/ca',
        natsTlsCertFile: '/c',
        natsTlsKeyFile: '/k',
      }),
    ).toEqual({
      url: 'nats://n:4222',
      user: 'u',
      password: 'p',
      tls: { caFile: '/ca', certFile: '/c', keyFile: '/k' },
    });
  });
});
