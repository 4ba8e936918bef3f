import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { formatSessionFrame, SSE_END_FRAME } from '@wizard-stream/contracts';
import { build } from 'esbuild';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, launchChromium } from './src/browser.js';
import { REPO_ROOT } from './src/local-stack.js';

type StreamHandler = (request: IncomingMessage, response: ServerResponse, index: number) => void;

function session(version: number, sessionId = 's1') {
  const now = new Date().toISOString();
  return {
    session_id: sessionId,
    team_id: 1,
    workflow_id: 'wf',
    skill_id: 'skill',
    started_at: now,
    run_phase: 'running',
    tasks: [],
    event_plan: null,
    error: null,
    pending_input: null,
    handoff_text: null,
    created_by: null,
    created_at: now,
    updated_at: now,
    is_stale: false,
    version,
  };
}

const frame = (version: number, sessionId = 's1') =>
  formatSessionFrame(version, sessionId, JSON.stringify(session(version, sessionId)));

function openStream(response: ServerResponse): void {
  response.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  response.flushHeaders();
}

/**
 * The subscribe client's EventSource transport in real headless Chromium, against a real scripted
 * SSE server: what the Node tests cannot cover (EventSource hides statuses and retries on its own).
 */
describe('subscribe client in Chromium (EventSource)', () => {
  let bundle: string;
  let server: Server;
  let baseUrl: string;
  let browser: Browser;
  let page: Page;
  let handler: StreamHandler = () => {};
  let streamRequests: { url: URL; accept: string | undefined; lastEventId: string | undefined }[] = [];
  const held: ServerResponse[] = [];

  beforeAll(async () => {
    const result = await build({
      entryPoints: [join(REPO_ROOT, 'test/src/browser-client-entry.ts')],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'silent',
    });
    bundle = result.outputFiles[0]?.text ?? '';
    server = createServer((request, response) => {
      const url = new URL(request.url ?? '/', 'http://test');
      if (url.pathname === '/') {
        response.writeHead(200, { 'Content-Type': 'text/html' });
        response.end('<!doctype html><script type="module" src="/client.js"></script>');
      } else if (url.pathname === '/client.js') {
        response.writeHead(200, { 'Content-Type': 'text/javascript' });
        response.end(bundle);
      } else if (url.pathname.endsWith('/stream/')) {
        streamRequests.push({
          url,
          accept: request.headers.accept,
          lastEventId: request.headers['last-event-id'] as string | undefined,
        });
        held.push(response);
        handler(request, response, streamRequests.length - 1);
      } else {
        response.writeHead(404);
        response.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchChromium();
  }, 60_000);

  afterEach(async () => {
    await page?.close();
    for (const response of held.splice(0)) response.destroy();
    streamRequests = [];
  });

  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise<void>((resolve) => server?.close(() => resolve()));
  });

  /** Starts a subscription in the page; its sessions, states and close reason collect on window. */
  async function subscribeInPage(options: { baseDelayMs?: number; maxDelayMs?: number } = {}) {
    page = await browser.context.newPage();
    await page.goto(baseUrl);
    await page.waitForFunction(() => 'wizardClient' in window);
    await page.evaluate(
      ({ baseUrl, baseDelayMs, maxDelayMs }) => {
        const w = window as unknown as Record<string, unknown> & {
          wizardClient: { subscribe: (options: unknown) => { close(): void } };
        };
        const sessions: number[] = [];
        const states: string[] = [];
        let minted = 0;
        w.sessions = sessions;
        w.states = states;
        w.subscription = w.wizardClient.subscribe({
          baseUrl,
          projectId: 1,
          workflowId: 'wf',
          credentials: { getToken: async () => `token-${++minted}` },
          onSession: (value: { version: number }) => sessions.push(value.version),
          onState: (state: string) => states.push(state),
          onClose: (close: { reason: string }) => {
            w.closeReason = close.reason;
          },
          baseDelayMs,
          maxDelayMs,
        });
      },
      { baseUrl, baseDelayMs: options.baseDelayMs ?? 50, maxDelayMs: options.maxDelayMs ?? 400 },
    );
  }

  const fromPage = <T>(name: string) =>
    page.evaluate((key) => (window as unknown as Record<string, T>)[key] as T, name);

  it('passes the stream token as ?token= and stops for good on 204', async () => {
    handler = (_request, response) => {
      response.writeHead(204);
      response.end();
    };
    await subscribeInPage();
    await page.waitForFunction(() => 'closeReason' in window, undefined, { timeout: 10_000 });
    expect(await fromPage('closeReason')).toBe('no_content');
    expect(await fromPage('states')).toEqual(['connecting', 'closed']);
    // The EventSource attempt and the one fetch that learned its status; no reconnect after that.
    expect(streamRequests).toHaveLength(2);
    expect(streamRequests[0]?.url.searchParams.get('token')).toBe('token-1');
    expect(streamRequests[0]?.url.searchParams.get('workflow_id')).toBe('wf');
    expect(streamRequests[0]?.accept).toBe('text/event-stream');
  });

  it('reconnects after event: end with a fresh token and drops the versions it already has', async () => {
    handler = (_request, response, index) => {
      openStream(response);
      if (index === 0) response.write(frame(1) + frame(2) + SSE_END_FRAME);
      else response.write(frame(2) + frame(3) + frame(1, 's2'));
    };
    await subscribeInPage();
    await page.waitForFunction(() => (window as unknown as { sessions: number[] }).sessions.length >= 4);
    expect(await fromPage('sessions')).toEqual([1, 2, 3, 1]);
    expect(streamRequests.map((request) => request.url.searchParams.get('token'))).toEqual([
      'token-1',
      'token-2',
    ]);
    // A new EventSource cannot carry Last-Event-ID: the repeated v2 was dropped by the client instead.
    expect(streamRequests[1]?.lastEventId).toBeUndefined();
    expect(await fromPage('states')).toEqual(['connecting', 'open', 'reconnecting', 'open']);
  });

  it('takes over reconnection from EventSource after a dropped stream', async () => {
    handler = (_request, response, index) => {
      openStream(response);
      response.write(frame(index + 1));
    };
    await subscribeInPage({ baseDelayMs: 100, maxDelayMs: 2000 });
    const sessionCount = () => fromPage<number[]>('sessions').then((sessions) => sessions.length);
    // Drop each of the first three streams once the page has its frame, as a dying gateway would.
    for (let dropped = 1; dropped <= 3; dropped++) {
      await page.waitForFunction(
        (count) => (window as unknown as { sessions: number[] }).sessions.length >= count,
        dropped,
        { timeout: 10_000 },
      );
      for (const response of held.splice(0)) response.socket?.destroy();
    }
    await page.waitForFunction(
      () => (window as unknown as { sessions: number[] }).sessions.length >= 4,
      undefined,
      {
        timeout: 10_000,
      },
    );
    expect(await sessionCount()).toBe(4);
    expect(await fromPage('sessions')).toEqual([1, 2, 3, 4]);
    // Exactly one request per attempt: EventSource did not reconnect on its own beside the client.
    expect(streamRequests).toHaveLength(4);
    const states = await fromPage<string[]>('states');
    expect(states).toEqual([
      'connecting',
      'open',
      'reconnecting',
      'open',
      'reconnecting',
      'open',
      'reconnecting',
      'open',
    ]);
  }, 30_000);

  it('retries a 401 with a freshly minted token', async () => {
    handler = (request, response) => {
      const token = new URL(request.url ?? '/', 'http://test').searchParams.get('token');
      if (token === 'token-1') {
        response.writeHead(401, { 'Content-Type': 'application/json' });
        response.end(
          '{"type":"authentication_error","code":"authentication_failed","detail":"expired","attr":null}',
        );
        return;
      }
      openStream(response);
      response.write(frame(7));
    };
    await subscribeInPage();
    await page.waitForFunction(() => (window as unknown as { sessions: number[] }).sessions.length >= 1);
    expect(await fromPage('sessions')).toEqual([7]);
    const tokens = streamRequests.map((request) => request.url.searchParams.get('token'));
    // EventSource's failed attempt and the status probe used token-1; the retry used a new token.
    expect(tokens).toEqual(['token-1', 'token-1', 'token-2']);
  });
});
