import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SnapshotClient, SnapshotUnavailableError } from '../src/snapshot.js';

const TIMEOUT_MS = 300;
const DTO = JSON.stringify({ session_id: 's', version: 1, pad: 'x'.repeat(40) });
const ROUTE = { teamId: 1, workflowId: 'w', skillId: undefined };
const NO_EVENTS = { onSnapshotCall() {} };

/**
 * A write-api that answers its headers at once and then sends the body a byte every 100 ms: each gap is
 * well inside the timeout, the whole body is not. (The real write-api never does this; a stalled one can.)
 */
describe('snapshot client deadlines', () => {
  let server: Server;
  let url: string;
  let trickling = true;
  /** Resolved when the server has begun a trickling answer. */
  let answering: () => void = () => {};

  beforeAll(async () => {
    server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json', 'content-length': DTO.length });
      if (!trickling) {
        response.end(DTO);
        return;
      }
      answering();
      let sent = 0;
      const timer = setInterval(() => {
        if (response.destroyed) return clearInterval(timer);
        response.write(DTO[sent++] as string);
        if (sent === DTO.length) {
          clearInterval(timer);
          response.end();
        }
      }, 100);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('gives up on a call whose body is still arriving at SNAPSHOT_TIMEOUT_MS, freeing its slot for the next connect', async () => {
    trickling = true;
    const client = new SnapshotClient(url, undefined, TIMEOUT_MS, NO_EVENTS, undefined);
    try {
      // Without a deadline over the body this would resolve with the session, after about 6 s.
      const failed = await client.fetch('key', ROUTE, '127.0.0.1').then(
        () => undefined,
        (error: unknown) => error,
      );
      expect(failed).toBeInstanceOf(SnapshotUnavailableError);
      // The next identical connect gets a call of its own, which a healthy write-api answers.
      trickling = false;
      const second = await client.fetch('key', ROUTE, '127.0.0.1');
      expect(second.kind).toBe('session');
    } finally {
      await client.close();
    }
  }, 15_000);

  it('close() ends a call in flight instead of waiting for it', async () => {
    trickling = true;
    const client = new SnapshotClient(url, undefined, 60_000, NO_EVENTS, undefined);
    const underWay = new Promise<void>((resolve) => {
      answering = resolve;
    });
    const call = client.fetch('key', ROUTE, '127.0.0.1').then(
      () => 'answered',
      () => 'failed',
    );
    await underWay;
    await client.close();
    expect(await call).toBe('failed');
  });
});
