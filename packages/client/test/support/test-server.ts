import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Session } from '../../src/index.js';

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}

export type Handler = (request: RecordedRequest, response: ServerResponse, index: number) => void;

export interface TestServer {
  url: string;
  requests: RecordedRequest[];
  close(): Promise<void>;
}

/** A real HTTP server on a loopback port whose answers each test scripts per request. */
export async function startTestServer(handler: Handler): Promise<TestServer> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => {
      body += chunk;
    });
    req.on('end', () => {
      const recorded = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body,
        at: Date.now(),
      };
      requests.push(recorded);
      handler(recorded, res, requests.length - 1);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(response: ServerResponse, status: number, body: unknown, headers = {}): void {
  response.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

export function openEventStream(response: ServerResponse): void {
  response.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
  response.flushHeaders();
}

export function sessionDto(overrides: Partial<Session> = {}): Session {
  const now = new Date().toISOString();
  return {
    session_id: 's1',
    team_id: 1,
    workflow_id: 'wf',
    skill_id: 'skill',
    started_at: now,
    run_phase: 'running',
    tasks: [{ id: 't1', title: 'Install SDK', status: 'in_progress' }],
    event_plan: null,
    error: null,
    pending_input: null,
    handoff_text: null,
    created_by: null,
    created_at: now,
    updated_at: now,
    is_stale: false,
    version: 1,
    ...overrides,
  };
}

/** A recording sleep: the test asserts the delays the client chose instead of waiting them out. */
export function recordingSleep(delays: number[]) {
  return async (ms: number, signal?: AbortSignal) => {
    delays.push(ms);
    await new Promise((resolve) => setImmediate(resolve));
    if (signal?.aborted) throw signal.reason;
  };
}

/** Yields the given numbers in turn (then repeats the last), as a deterministic jitter source. */
export function sequence(...values: number[]): () => number {
  let index = 0;
  return () => values[Math.min(index++, values.length - 1)] ?? 0;
}
