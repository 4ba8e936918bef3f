import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, NATS_SERVER_BINARY, waitForPort } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BusConnection,
  DEFAULT_MAX_PAYLOAD_BYTES,
  publishSession,
  SESSION_HEADERS_MAX_BYTES,
  sessionPayloadLimit,
} from '../src/index.js';

const MAX_PAYLOAD = 64 * 1024;

describe('the payload limit a bus connection learns from its server', () => {
  let dir: string;
  let server: ChildProcess;
  let exited: Promise<unknown>;
  let url: string;

  beforeAll(async () => {
    if (!NATS_SERVER_BINARY) throw new Error('nats-server is not installed');
    dir = await mkdtemp(join(tmpdir(), 'wizard-nats-payload-'));
    const port = await freePort();
    await writeFile(join(dir, 'nats.conf'), `listen: 127.0.0.1:${port}\nmax_payload: ${MAX_PAYLOAD}\n`);
    server = spawn(NATS_SERVER_BINARY, ['-c', join(dir, 'nats.conf')], { stdio: 'ignore' });
    exited = new Promise((resolve) => server.once('exit', resolve));
    await waitForPort(port, 10_000);
    url = `nats://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    server?.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  });

  it("uses NATS's default before the first connect and the server's max_payload after it", async () => {
    const bus = new BusConnection({ url, name: 'payload-limit' });
    expect(bus.maxPayload).toBe(DEFAULT_MAX_PAYLOAD_BYTES);
    await bus.ready();
    expect(bus.maxPayload).toBe(MAX_PAYLOAD);
    expect(sessionPayloadLimit(bus)).toBe(MAX_PAYLOAD - SESSION_HEADERS_MAX_BYTES);
    const publish = (payload: string) =>
      publishSession(bus, {
        subject: 'wizard.1.a.b',
        payload,
        sessionId: 's'.repeat(255),
        version: Number.MAX_SAFE_INTEGER,
        committedAtMs: Date.now(),
        traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`,
        tracestate: 't'.repeat(512),
      });
    // At the limit, with the widest headers, the server takes it; above max_payload the client refuses.
    expect(() => publish('x'.repeat(sessionPayloadLimit(bus)))).not.toThrow();
    await bus.nats?.flush();
    expect(bus.isConnected()).toBe(true);
    expect(() => publish('x'.repeat(MAX_PAYLOAD + 1))).toThrow();
    await bus.close();
  });
});
