import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import {
  BusConnection,
  type BusLogger,
  type BusOptions,
  confirmPublished,
  publishSession,
  type SessionMessage,
  subscribeSessions,
} from '@wizard-stream/bus';
import { NATS_HEADERS } from '@wizard-stream/contracts';
import { until } from '@wizard-stream/testkit';
import { afterEach, expect, it } from 'vitest';

/** How one party connects: a login (or none) and the TLS files it holds. */
export type NatsParty = Pick<BusOptions, 'user' | 'password' | 'tls'>;

/** A NATS deployment under test and the credentials its configuration hands out. */
export interface NatsTarget {
  /** The client URL the probes connect to. */
  url: string;
  /** Another node of the same cluster, when there is one: write-api's publishes must reach it over the routes. */
  peerUrl?: string;
  writeApi: NatsParty;
  gateway: NatsParty;
  /** Someone on the network without a login (over TLS with a client certificate, when the target wants one). */
  stranger: NatsParty;
}

/** Log lines a BusConnection wrote, so a test can check what an operator would read. */
export class CapturedLog implements BusLogger {
  readonly errors: string[] = [];
  info(): void {}
  warn(): void {}
  error(_object: object, message: string): void {
    this.errors.push(message);
  }
}

/** The name of the error a plain nats.js connect as `party` fails with, or 'connected'. */
async function connectOutcome(url: string, party: NatsParty): Promise<string> {
  try {
    const connection = await connect({
      servers: url,
      timeout: 5000,
      maxReconnectAttempts: 0,
      ...(party.user !== undefined && { user: party.user, pass: party.password }),
      ...(party.tls && { tls: { ...party.tls } }),
    });
    await connection.close();
    return 'connected';
  } catch (error) {
    return (error as Error).name;
  }
}

/**
 * The refusals of docs/operations.md#security, as `it` blocks against `target()` (set in the caller's
 * beforeAll): nobody connects without a login, write-api publishes on `wizard.>` only and reads nothing
 * else, the gateways read `wizard.>` and publish nothing. The forged publisher and the sniffing
 * subscriber of issue 10 are the two central cases.
 */
export function natsPermissionTests(target: () => NatsTarget): void {
  const opened: BusConnection[] = [];
  const bus = (party: NatsParty, name: string, url = target().url) => {
    const log = new CapturedLog();
    const connection = new BusConnection({ url, name, ...party, logger: log });
    opened.push(connection);
    return { connection, log };
  };
  /** A gateway-like reader of `wizard.>` on `url`, for what reaches a subscriber. */
  const listen = async (url = target().url) => {
    const { connection } = bus(target().gateway, 'probe-listener', url);
    const received: SessionMessage[] = [];
    await subscribeSessions(connection, 'wizard.>', (message) => received.push(message));
    await confirmPublished(connection, 5000);
    return { connection, received };
  };

  afterEach(async () => {
    await Promise.allSettled(opened.splice(0).map((connection) => connection.close()));
  });

  it('refuses a connect without a login', async () => {
    expect(await connectOutcome(target().url, target().stranger)).toBe('AuthorizationError');
  });

  it('refuses a known user with a wrong password, and the service logs and counts it', async () => {
    const wrong = { ...target().gateway, password: 'not-the-gateway-password' };
    expect(await connectOutcome(target().url, wrong)).toBe('AuthorizationError');
    const { connection, log } = bus(wrong, 'probe-wrong-password');
    await until(() => connection.refusals().login > 0, { what: 'the refused login to be counted' });
    expect(connection.isConnected()).toBe(false);
    expect(log.errors.join('\n')).toContain('nats refused the login');
  });

  it("carries write-api's publish on wizard.> to a gateway (on another node when there is one)", async () => {
    const { url, peerUrl } = target();
    const listener = await listen(peerUrl ?? url);
    const { connection: writeApi } = bus(target().writeApi, 'probe-write-api');
    await writeApi.ready();
    // Interest crosses the routes asynchronously: publish again until the peer has heard of the subscription.
    let version = 0;
    await until(
      async () => {
        version++;
        publishSession(writeApi, {
          subject: 'wizard.2.relay.s',
          payload: '{}',
          sessionId: 's',
          version,
          committedAtMs: Date.now(),
        });
        await confirmPublished(writeApi, 5000);
        return listener.received.length > 0;
      },
      { timeoutMs: 15_000, intervalMs: 100, what: "write-api's publish to reach the gateway" },
    );
    expect(listener.received[0]?.subject).toBe('wizard.2.relay.s');
    expect(writeApi.refusals()).toEqual({ login: 0, publish: 0, subscribe: 0 });
  });

  it("refuses the forged publisher: the gateways' login cannot publish wizard.2.relay.s with Wizard-Version 999999", async () => {
    const listener = await listen();
    const { connection: forger, log } = bus(target().gateway, 'probe-forger');
    const nats = await forger.ready();
    const headers = natsHeaders();
    headers.set(NATS_HEADERS.sessionId, 's');
    headers.set(NATS_HEADERS.version, '999999');
    nats.publish('wizard.2.relay.s', '{"forged":true}', { headers });
    // The server drops it and says so on the connection only: the call itself did not throw.
    await until(() => forger.refusals().publish === 1, { what: 'the forged publish to be refused' });
    expect(log.errors.join('\n')).toMatch(/refused to let this service publish on wizard\.2\.relay\.s/);
    // Both round trips done: had the server routed the message, the listener would hold it by now.
    await confirmPublished(forger, 5000);
    await confirmPublished(listener.connection, 5000);
    expect(listener.received).toEqual([]);
  });

  it("refuses the sniffing subscriber: write-api's login cannot subscribe to wizard.>", async () => {
    const { connection: sniffer, log } = bus(target().writeApi, 'probe-sniffer');
    const sniffed: SessionMessage[] = [];
    await subscribeSessions(sniffer, 'wizard.>', (message) => sniffed.push(message));
    await until(() => sniffer.refusals().subscribe === 1, { what: 'the subscription to be refused' });
    expect(log.errors.join('\n')).toMatch(/refused to let this service subscribe on wizard\.>/);
    // write-api's own publish, which a live subscription would have received.
    publishSession(sniffer, {
      subject: 'wizard.2.a.b',
      payload: '{}',
      sessionId: 's',
      version: 1,
      committedAtMs: 1,
    });
    await confirmPublished(sniffer, 5000);
    expect(sniffed).toEqual([]);
  });

  it('keeps write-api to wizard.>: a publish on another subject is refused', async () => {
    const { connection: writeApi } = bus(target().writeApi, 'probe-write-api-elsewhere');
    (await writeApi.ready()).publish('audit.log', 'x');
    await until(() => writeApi.refusals().publish === 1, {
      what: 'the publish outside wizard.> to be refused',
    });
  });

  it("keeps the gateways to wizard.> and their replies: subscribing to '>' is refused", async () => {
    const { connection: gateway } = bus(target().gateway, 'probe-gateway-everything');
    (await gateway.ready()).subscribe('>');
    await until(() => gateway.refusals().subscribe === 1, { what: "the subscription to '>' to be refused" });
  });
}
