import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { type ParsedSseEvent, parseSessionEventId, SseParser } from '@wizard-stream/contracts';

/** A data frame, identified from its `id:` line; the DTO is parsed only when a test reads it. */
export class SessionEvent {
  private parsed: { team_id: number; workflow_id: string; skill_id: string } | undefined;

  constructor(
    readonly id: string,
    readonly sessionId: string,
    readonly version: number,
    readonly data: string,
  ) {}

  private get dto() {
    this.parsed ??= JSON.parse(this.data) as { team_id: number; workflow_id: string; skill_id: string };
    return this.parsed;
  }

  get teamId(): number {
    return this.dto.team_id;
  }

  get workflowId(): string {
    return this.dto.workflow_id;
  }

  get skillId(): string {
    return this.dto.skill_id;
  }
}

/** A minimal SSE client over node:http: a real socket, parsed with the contracts' SseParser. */
export class SseStream {
  readonly events: ParsedSseEvent[] = [];
  readonly comments: string[] = [];
  /** Data frames (the default `message` event) in arrival order. */
  readonly sessions: SessionEvent[] = [];
  private readonly latest = new Map<string, number>();
  body = '';
  closed = false;
  private readonly waiters = new Set<() => void>();
  private readonly parser = new SseParser(
    (event) => {
      this.events.push(event);
      const id = parseSessionEventId(event.id);
      if (event.event === 'message' && id && event.id) {
        this.sessions.push(new SessionEvent(event.id, id.sessionId, id.version, event.data));
        this.latest.set(id.sessionId, Math.max(this.latest.get(id.sessionId) ?? 0, id.version));
      }
      this.notify();
    },
    (comment) => {
      this.comments.push(comment);
      this.notify();
    },
  );
  readonly whenClosed: Promise<void>;

  constructor(readonly response: IncomingMessage) {
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      if (this.status === 200) this.parser.push(chunk);
      else this.body += chunk;
    });
    this.whenClosed = new Promise((resolve) => {
      const done = () => {
        if (this.closed) return;
        this.closed = true;
        this.notify();
        resolve();
      };
      response.on('end', done);
      response.on('close', done);
      response.on('error', done);
      response.socket.on('close', done);
    });
  }

  get status(): number {
    return this.response.statusCode ?? 0;
  }

  get headers(): IncomingHttpHeaders {
    return this.response.headers;
  }

  /** The highest version received for a session (0 for none). */
  latestVersion(sessionId: string): number {
    return this.latest.get(sessionId) ?? 0;
  }

  /** Resolves as soon as the check holds, re-checked on every event, comment and close. */
  waitFor(check: () => boolean, { timeoutMs = 10_000, what = 'stream condition' } = {}): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const waiter = () => {
        if (!check()) return;
        clearTimeout(timer);
        this.waiters.delete(waiter);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(
          new Error(
            `${what} did not hold within ${timeoutMs} ms (events: ${this.events.length}, last: ${this.events.at(-1)?.id}, closed: ${this.closed})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Stops reading: the socket's receive buffer fills and the server's writes stop draining. */
  pause(): void {
    this.response.pause();
  }

  close(): void {
    this.response.destroy();
    this.response.socket.destroy();
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

export function openStream(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      url,
      { headers: { accept: 'text/event-stream', ...headers }, agent: false },
      (response) => resolve(new SseStream(response)),
    );
    request.on('error', reject);
    request.end();
  });
}

/** Collects a non-streaming response (errors) fully. */
export async function openAndRead(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const stream = await openStream(url, headers);
  await stream.whenClosed;
  return stream;
}
