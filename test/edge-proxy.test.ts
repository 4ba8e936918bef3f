import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { apiErrors, MAX_BODY_BYTES } from '@wizard-stream/contracts';
import { freePort } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EdgeProxy, startEdgeProxy } from '../scripts/stack/edge-proxy.js';
import { type Exchange, exchange } from './src/exchange.js';

interface Upstream {
  name: string;
  url: string;
  server: Server;
  seen: {
    method: string;
    url: string;
    body: string;
    acceptEncoding: string | undefined;
    headers: IncomingMessage['headers'];
  }[];
}

async function startUpstream(name: string, handle?: (req: IncomingMessage, res: ServerResponse) => boolean) {
  const seen: Upstream['seen'] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString();
    });
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        body,
        acceptEncoding: req.headers['accept-encoding'] as string | undefined,
        headers: req.headers,
      });
      if (handle?.(req, res)) return;
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ upstream: name }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { name, url: `http://127.0.0.1:${port}`, server, seen } satisfies Upstream;
}

const closeServer = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** One raw GET to the edge: a request target and Host header that fetch would not send as given. */
function rawGet(base: string, path: string, host?: string): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path,
        agent: false,
        headers: host === undefined ? {} : { Host: host },
      },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          body += chunk;
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on('error', reject);
    request.end();
  });
}

/** The local stack's edge proxy against real loopback upstreams. */
describe('edge proxy', () => {
  let writeApi: Upstream;
  let gatewayA: Upstream;
  let gatewayB: Upstream;
  let dashboardDir: string;
  let edge: EdgeProxy;
  const open: ServerResponse[] = [];

  /** Gateways answer stream paths with SSE: a first frame at once, then hold the stream open. */
  const sse = (name: string) => (req: IncomingMessage, res: ServerResponse) => {
    if (!req.url?.includes('/stream')) return false;
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache, no-transform' });
    open.push(res);
    // A stream with nothing to say yet: only its headers, which the client must get at once.
    if (req.url.includes('workflow_id=quiet')) {
      res.flushHeaders();
      return true;
    }
    res.write(`retry: 3000\n\ndata: {"gateway":"${name}"}\n\n`);
    return true;
  };

  beforeAll(async () => {
    writeApi = await startUpstream('write-api');
    gatewayA = await startUpstream('a', sse('a'));
    gatewayB = await startUpstream('b', sse('b'));
    dashboardDir = await mkdtemp(join(tmpdir(), 'edge-dashboard-'));
    await writeFile(join(dashboardDir, 'index.html'), '<!doctype html><title>dash</title>');
    await writeFile(join(dashboardDir, 'app.js'), 'console.log(1)');
    edge = await startEdgeProxy({
      host: '127.0.0.1',
      port: await freePort(),
      writeApiUrl: writeApi.url,
      gatewayUrls: [gatewayA.url, gatewayB.url],
      dashboardDir,
      devCredentials: () => ({ teams: [{ id: 1, api_key: 'wsk_dev' }] }),
      log: () => {},
    });
  });

  afterAll(async () => {
    for (const response of open) response.destroy();
    await edge?.close();
    await Promise.all([writeApi, gatewayA, gatewayB].map((upstream) => closeServer(upstream.server)));
    await rm(dashboardDir, { recursive: true, force: true });
  });

  /** Opens a stream through the edge and returns its first chunk of text and the reader. */
  async function openStream(path: string) {
    const controller = new AbortController();
    const response = await fetch(`${edge.url}${path}`, {
      headers: { Accept: 'text/event-stream', 'Accept-Encoding': 'gzip, br' },
      signal: controller.signal,
    });
    const reader = response.body?.getReader();
    const first = await reader?.read();
    return {
      response,
      text: new TextDecoder().decode(first?.value),
      reader,
      abort: () => controller.abort(),
    };
  }

  it('round-robins stream paths over the gateways and passes the first frame through before the stream ends', async () => {
    const streams = [];
    for (const path of [
      '/api/projects/1/wizard/sessions/stream/?workflow_id=w',
      '/api/projects/1/wizard_sessions/stream/?workflow_id=w',
      '/api/projects/1/wizard/sessions/stream?workflow_id=w',
      '/api/projects/1/wizard/sessions/stream/?workflow_id=w&token=t',
    ]) {
      streams.push(await openStream(path));
    }
    const served = streams.map((stream) => JSON.parse(stream.text.split('data: ')[1] ?? '{}').gateway);
    expect(served).toEqual(['a', 'b', 'a', 'b']);
    for (const stream of streams) {
      expect(stream.response.status).toBe(200);
      expect(stream.response.headers.get('content-type')).toBe('text/event-stream');
      expect(stream.response.headers.get('content-encoding')).toBeNull();
      stream.abort();
    }
    expect(gatewayA.seen[0]?.url).toBe('/api/projects/1/wizard/sessions/stream/?workflow_id=w');
    expect(writeApi.seen.filter((request) => request.url.includes('stream'))).toEqual([]);
  });

  it("passes a stream's headers on before its first frame", async () => {
    const controller = new AbortController();
    const response = await fetch(`${edge.url}/api/projects/1/wizard/sessions/stream/?workflow_id=quiet`, {
      headers: { Accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    controller.abort();
  });

  it('ends the client stream when its gateway dies mid-stream', async () => {
    const stream = await openStream('/api/projects/1/wizard/sessions/stream/?workflow_id=w');
    const held = open.at(-1);
    held?.socket?.destroy();
    const next = await stream.reader?.read().then(
      (result) => (result.done ? 'ended' : 'data'),
      () => 'errored',
    );
    expect(['ended', 'errored']).toContain(next);
  });

  it('sends everything else to write-api, bodies included', async () => {
    const response = await fetch(`${edge.url}/api/projects/1/wizard/sessions/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{"session_id":"s"}',
    });
    expect(await response.json()).toEqual({ upstream: 'write-api' });
    expect(writeApi.seen.at(-1)).toMatchObject({ method: 'POST', body: '{"session_id":"s"}' });
    const list = await fetch(`${edge.url}/api/projects/1/wizard/sessions/?workflow_id=w`);
    expect(await list.json()).toEqual({ upstream: 'write-api' });
    expect(writeApi.seen.at(-1)).toMatchObject({
      method: 'GET',
      url: '/api/projects/1/wizard/sessions/?workflow_id=w',
    });
  });

  it('routes only /api/** and the dashboard: /metrics, /readyz, /healthz and other paths are 404 at the edge', async () => {
    const before = writeApi.seen.length;
    for (const path of ['/metrics', '/readyz', '/healthz', '/internal/sessions', '/apix', '/docs']) {
      const response = await fetch(`${edge.url}${path}`);
      expect(response.status, path).toBe(404);
      expect(await response.json()).toMatchObject({ type: 'invalid_request', code: 'not_found' });
    }
    expect(writeApi.seen.slice(before)).toEqual([]);
  });

  it('names each request to its upstream with X-Request-Id, keeping the one a client sent', async () => {
    await fetch(`${edge.url}/api/projects/1/wizard/sessions/a/`);
    const generated = writeApi.seen.at(-1)?.headers['x-request-id'];
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    await fetch(`${edge.url}/api/projects/1/wizard/sessions/b/`, { headers: { 'X-Request-Id': 'cli-42' } });
    expect(writeApi.seen.at(-1)?.headers['x-request-id']).toBe('cli-42');
    const stream = await openStream('/api/projects/1/wizard/sessions/stream/?workflow_id=w');
    stream.abort();
    const gatewaySeen = [...gatewayA.seen, ...gatewayB.seen].at(-1);
    expect(gatewaySeen?.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(gatewaySeen?.headers['x-forwarded-proto']).toBe('http');
  });

  it('serves the dashboard at / and the dev credentials', async () => {
    const page = await fetch(`${edge.url}/`);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(await page.text()).toContain('<title>dash</title>');
    expect((await fetch(`${edge.url}/app.js`)).headers.get('content-type')).toContain('javascript');
    expect(await (await fetch(`${edge.url}/dev/credentials`)).json()).toEqual({
      teams: [{ id: 1, api_key: 'wsk_dev' }],
    });
  });

  it('answers 400 to a request target that is no URL and keeps serving', async () => {
    for (const path of ['//', '//[', '//%zz']) {
      const answer = await rawGet(edge.url, path);
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body)).toMatchObject({ type: 'validation_error', code: 'invalid_input' });
    }
    expect((await fetch(`${edge.url}/`)).status).toBe(200);
  });

  it('serves the dev credentials only to a request addressed to a loopback name', async () => {
    const port = new URL(edge.url).port;
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`]) {
      const answer = await rawGet(edge.url, '/dev/credentials', host);
      expect(answer.status).toBe(200);
      expect(answer.body).toContain('wsk_dev');
    }
    // A DNS-rebound page reaches 127.0.0.1 under its own name: it must not read the keys.
    for (const host of [`rebound.example:${port}`, `127.0.0.1.rebound.example:${port}`]) {
      const answer = await rawGet(edge.url, '/dev/credentials', host);
      expect(answer.status).toBe(403);
      expect(answer.body).not.toContain('wsk_dev');
    }
  });

  it('skips a gateway that refuses connections, and answers 502 when none accepts', async () => {
    const refusing = await freePort();
    const skipping = await startEdgeProxy({
      host: '127.0.0.1',
      port: await freePort(),
      writeApiUrl: writeApi.url,
      gatewayUrls: [`http://127.0.0.1:${refusing}`, gatewayB.url],
      dashboardDir,
      devCredentials: () => ({}),
      log: () => {},
    });
    const allDown = await startEdgeProxy({
      host: '127.0.0.1',
      port: await freePort(),
      writeApiUrl: writeApi.url,
      gatewayUrls: [`http://127.0.0.1:${refusing}`],
      dashboardDir,
      devCredentials: () => ({}),
      log: () => {},
    });
    try {
      for (let attempt = 0; attempt < 4; attempt++) {
        const controller = new AbortController();
        const response = await fetch(`${skipping.url}/api/projects/1/wizard/sessions/stream/?workflow_id=w`, {
          signal: controller.signal,
        });
        expect(response.status).toBe(200);
        const first = await response.body?.getReader().read();
        expect(new TextDecoder().decode(first?.value)).toContain('"gateway":"b"');
        controller.abort();
      }
      const none = await fetch(`${allDown.url}/api/projects/1/wizard/sessions/stream/?workflow_id=w`);
      expect(none.status).toBe(502);
      expect(await none.json()).toMatchObject({ code: 'bad_gateway' });
    } finally {
      await skipping.close();
      await allDown.close();
    }
  });

  describe('bodies over the limit and failed upstreams', () => {
    /** Like write-api: an over-limit Content-Length is answered 413 and the connection closed unread. */
    let strict: Upstream;
    let strictEdge: EdgeProxy;
    let agent: Agent;

    beforeAll(async () => {
      strict = await startUpstream('strict');
      strict.server.removeAllListeners('request');
      strict.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
        if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
          res.writeHead(413, { 'Content-Type': 'application/json', Connection: 'close' });
          res.end(JSON.stringify(apiErrors.payloadTooLarge(MAX_BODY_BYTES).body));
          res.on('finish', () => req.socket.destroy());
          return;
        }
        if (req.url?.includes('/reset/')) {
          req.socket.destroy();
          return;
        }
        let body = '';
        req.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        req.on('end', () => {
          strict.seen.push({
            method: req.method ?? '',
            url: req.url ?? '',
            body,
            acceptEncoding: undefined,
            headers: req.headers,
          });
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ upstream: 'strict', bytes: body.length }));
        });
      });
      strictEdge = await startEdgeProxy({
        host: '127.0.0.1',
        port: await freePort(),
        writeApiUrl: strict.url,
        gatewayUrls: [gatewayA.url],
        dashboardDir,
        devCredentials: () => ({}),
        log: () => {},
      });
    });

    afterAll(async () => {
      agent?.destroy();
      await strictEdge?.close();
      if (strict) await closeServer(strict.server);
    });

    const post = '/api/projects/1/wizard/sessions/';
    const json = { 'Content-Type': 'application/json' };
    const tooLarge = apiErrors.payloadTooLarge(MAX_BODY_BYTES).body;

    it("answers ten 2 MiB bodies with write-api's 413 and serves the next request on the same connection", async () => {
      agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const body = Buffer.alloc(2 * 1024 * 1024, 'x');
      const answers: Exchange[] = [];
      for (let attempt = 0; attempt < 10; attempt++) {
        answers.push(
          await exchange(agent, strictEdge.url, { method: 'POST', path: post, headers: json, body }),
        );
      }
      expect(answers.map((answer) => answer.status)).toEqual(Array(10).fill(413));
      for (const answer of answers) expect(JSON.parse(answer.body)).toEqual(tooLarge);
      const next = await exchange(agent, strictEdge.url, {
        method: 'POST',
        path: post,
        headers: json,
        body: Buffer.from('{"session_id":"after"}'),
      });
      expect(next.status).toBe(200);
      expect(JSON.parse(next.body)).toEqual({ upstream: 'strict', bytes: 22 });
      // One connection for all eleven: no answer broke it.
      const ports = new Set([...answers, next].map((answer) => answer.localPort));
      expect(answers[0]?.localPort).toBeGreaterThan(0);
      expect([...ports]).toEqual([answers[0]?.localPort]);
    }, 20_000);

    it('answers 413 to a chunked body that grows past the limit, without forwarding it', async () => {
      const before = strict.seen.length;
      const chunks = Array.from({ length: 33 }, () => Buffer.alloc(64 * 1024, 'y'));
      const chunked = new Agent({ keepAlive: false });
      try {
        const answer = await exchange(chunked, strictEdge.url, {
          method: 'POST',
          path: post,
          headers: { ...json, 'Transfer-Encoding': 'chunked' },
          body: chunks,
        });
        expect(answer.status).toBe(413);
        expect(JSON.parse(answer.body)).toEqual(tooLarge);
      } finally {
        chunked.destroy();
      }
      expect(strict.seen.slice(before)).toEqual([]);
      // Just under the limit, chunked: forwarded whole.
      const fits = await fetch(`${strictEdge.url}${post}`, {
        method: 'POST',
        headers: json,
        body: new Blob([Buffer.alloc(MAX_BODY_BYTES, 'z')]).stream(),
        duplex: 'half',
      } as RequestInit);
      expect(await fits.json()).toEqual({ upstream: 'strict', bytes: MAX_BODY_BYTES });
    });

    it('forwards a body sent with Expect: 100-continue', async () => {
      const once = new Agent({ keepAlive: false });
      try {
        const answer = await exchange(once, strictEdge.url, {
          method: 'POST',
          path: post,
          headers: { ...json, Expect: '100-continue' },
          body: Buffer.from('{"a":1}'),
        });
        expect(answer.status).toBe(200);
        expect(JSON.parse(answer.body)).toEqual({ upstream: 'strict', bytes: 7 });
      } finally {
        once.destroy();
      }
      expect(strict.seen.at(-1)?.headers.expect).toBeUndefined();
    });

    it('answers 502 with connection: close when the upstream fails, and the next request succeeds', async () => {
      const pooled = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const failed = await exchange(pooled, strictEdge.url, {
          path: '/api/projects/1/wizard/sessions/reset/',
        });
        expect(failed.status).toBe(502);
        expect(failed.headers.connection).toBe('close');
        expect(JSON.parse(failed.body)).toMatchObject({ type: 'server_error', code: 'bad_gateway' });
        const next = await exchange(pooled, strictEdge.url, {
          method: 'POST',
          path: post,
          headers: json,
          body: Buffer.from('{}'),
        });
        expect(next.status).toBe(200);
      } finally {
        pooled.destroy();
      }
    });
  });
});
