import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EdgeProxy, startEdgeProxy } from '../scripts/stack/edge-proxy.js';

interface Upstream {
  name: string;
  url: string;
  server: Server;
  seen: { method: string; url: string; body: string; acceptEncoding: string | undefined }[];
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
    res.write(`retry: 3000\n\ndata: {"gateway":"${name}"}\n\n`);
    open.push(res);
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
    expect(await (await fetch(`${edge.url}/healthz`)).json()).toEqual({ upstream: 'write-api' });
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
      expect(JSON.parse(answer.body)).toMatchObject({ code: 'invalid_request' });
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
});
