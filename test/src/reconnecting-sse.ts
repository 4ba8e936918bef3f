import { type ClientRequest, request as httpRequest } from 'node:http';
import { parseSessionEventId, SSE_END_EVENT, SseParser } from '@wizard-stream/contracts';

/** One data frame as it arrived, with the fields the delivery checks need from its DTO. */
export interface ReceivedFrame {
  /** Index into `connections`: which connection carried it. */
  connection: number;
  sessionId: string;
  version: number;
  teamId: number;
  workflowId: string;
  skillId: string;
  runPhase: string;
  receivedAt: number;
}

export type ConnectionEnd = 'end-event' | 'closed' | 'refused' | 'error' | 'stopped';

export interface ConnectionRecord {
  server: string;
  /** The HTTP status; undefined when the request failed before any response (e.g. connection refused). */
  status: number | undefined;
  lastEventIdSent: string | undefined;
  openedAt: number;
  endedAt?: number;
  endedBy?: ConnectionEnd;
  error?: string;
}

export interface ReconnectingStreamOptions {
  /** Path and query of the stream; the server part comes from `pickServer` on every attempt. */
  path: string;
  headers: Record<string, string>;
  /** The load balancer in front of the gateways: the origin the next attempt goes to. */
  pickServer: () => string;
  /** Delay before attempt `attempt` (1 after a connection that was open, growing while attempts fail). */
  reconnectDelayMs: (attempt: number) => number;
}

interface DtoFields {
  team_id: number;
  workflow_id: string;
  skill_id: string;
  run_phase: string;
}

/**
 * An SSE client that behaves like a browser's EventSource behind a load balancer: it reconnects after a
 * close, an `event: end`, a refused or failed attempt, sends `Last-Event-ID`, and stops for good on 204.
 * Unlike the SDK it keeps every frame with the connection that carried it, so per-connection ordering
 * and duplicates can be checked; nothing is deduplicated here.
 */
export class ReconnectingStream {
  readonly frames: ReceivedFrame[] = [];
  readonly connections: ConnectionRecord[] = [];
  lastEventId: string | undefined;
  private readonly highest = new Map<string, number>();
  private currentRequest: ClientRequest | undefined;
  private openIndex: number | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private failuresInARow = 0;
  private stopped = false;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly options: ReconnectingStreamOptions) {}

  /** Connects and resolves once the first attempt is answered with 200; rejects with its status otherwise. */
  async open(timeoutMs = 15_000): Promise<void> {
    this.connect();
    await this.waitFor(() => this.connections[0]?.status !== undefined || this.connections[0]?.endedAt, {
      timeoutMs,
      what: `a response to ${this.options.path}`,
    });
    const first = this.connections[0] as ConnectionRecord;
    if (first.status !== 200) {
      this.stop();
      throw new Error(`stream ${this.options.path} on ${first.server}: ${first.status ?? first.error}`);
    }
  }

  /** True while a connection is streaming (200 received, not closed). */
  get isOpen(): boolean {
    return this.openIndex !== undefined;
  }

  /** The origin of the streaming connection, if any. */
  get server(): string | undefined {
    return this.openIndex === undefined ? undefined : this.connections[this.openIndex]?.server;
  }

  /** The highest version received for a session over all connections (0 for none). */
  highestVersion(sessionId: string): number {
    return this.highest.get(sessionId) ?? 0;
  }

  /** Resolves as soon as the check holds; re-checked on every frame and connection change. */
  waitFor(check: () => unknown, { timeoutMs = 10_000, what = 'stream condition' } = {}): Promise<void> {
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
        const last = this.connections.at(-1);
        reject(
          new Error(
            `${what} did not hold within ${timeoutMs} ms on ${this.options.path} (frames: ${this.frames.length}, connections: ${this.connections.length}, last: ${JSON.stringify(last)})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /**
   * Per connection and session, versions must strictly increase (docs/delivery.md#guarantee, b): each violation is
   * reported as text naming the connection, session and the two versions.
   */
  orderViolations(): string[] {
    const lastSeen = new Map<string, number>();
    const violations: string[] = [];
    for (const frame of this.frames) {
      const key = `${frame.connection}\u0000${frame.sessionId}`;
      const previous = lastSeen.get(key);
      if (previous !== undefined && frame.version <= previous) {
        violations.push(
          `connection ${frame.connection} (${this.connections[frame.connection]?.server}): ${frame.sessionId} v${frame.version} after v${previous}`,
        );
      }
      lastSeen.set(key, frame.version);
    }
    return violations;
  }

  /** Closes the connection for good; no reconnect follows. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.currentRequest?.destroy();
    this.notify();
  }

  private connect(): void {
    if (this.stopped) return;
    const server = this.options.pickServer();
    const record: ConnectionRecord = {
      server,
      status: undefined,
      lastEventIdSent: this.lastEventId,
      openedAt: Date.now(),
    };
    const index = this.connections.push(record) - 1;
    const headers: Record<string, string> = { accept: 'text/event-stream', ...this.options.headers };
    if (this.lastEventId !== undefined) headers['last-event-id'] = this.lastEventId;
    const request = httpRequest(new URL(this.options.path, server), { headers, agent: false });
    this.currentRequest = request;

    let finished = false;
    const finish = (endedBy: ConnectionEnd, error?: Error) => {
      if (finished) return;
      finished = true;
      record.endedAt = Date.now();
      record.endedBy ??= this.stopped ? 'stopped' : endedBy;
      if (error) record.error = error.message;
      if (this.openIndex === index) this.openIndex = undefined;
      if (this.currentRequest === request) this.currentRequest = undefined;
      request.destroy();
      this.notify();
      this.scheduleReconnect(record);
    };

    request.on('error', (error) => finish('error', error));
    request.on('response', (response) => {
      record.status = response.statusCode;
      response.on('error', (error) => finish('closed', error));
      response.on('close', () => finish(record.status === 200 ? 'closed' : 'refused'));
      if (response.statusCode !== 200) {
        response.resume();
        this.notify();
        return;
      }
      this.openIndex = index;
      this.failuresInARow = 0;
      const parser = new SseParser((event) => {
        if (parser.lastEventId !== undefined) this.lastEventId = parser.lastEventId;
        if (event.event === SSE_END_EVENT) {
          // The gateway asks the client to come back (rotation or drain): reconnect at once, elsewhere.
          record.endedBy = 'end-event';
          finish('end-event');
          return;
        }
        const id = parseSessionEventId(event.id);
        if (event.event !== 'message' || !id) return;
        const dto = JSON.parse(event.data) as DtoFields;
        this.frames.push({
          connection: index,
          sessionId: id.sessionId,
          version: id.version,
          teamId: dto.team_id,
          workflowId: dto.workflow_id,
          skillId: dto.skill_id,
          runPhase: dto.run_phase,
          receivedAt: Date.now(),
        });
        this.highest.set(id.sessionId, Math.max(this.highestVersion(id.sessionId), id.version));
        this.notify();
      });
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => parser.push(chunk));
      this.notify();
    });
    request.end();
  }

  private scheduleReconnect(ended: ConnectionRecord): void {
    if (this.stopped) return;
    // 204 is the one answer after which EventSource gives up (the killswitch).
    if (ended.status === 204) {
      this.stopped = true;
      return;
    }
    this.failuresInARow = ended.status === 200 ? 1 : this.failuresInARow + 1;
    this.reconnectTimer = setTimeout(
      () => this.connect(),
      this.options.reconnectDelayMs(this.failuresInARow),
    );
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}
