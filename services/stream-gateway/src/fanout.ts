import type { ConnectionLimits, DeliveryStats, StreamConnection } from './connection.js';

/**
 * Every connection of the process and the one timer that serves them all: heartbeats, slow-client
 * closes and rotation deadlines are checked by a sweep instead of a timer per connection.
 */
export class StreamRegistry {
  readonly connections = new Set<StreamConnection>();
  readonly stats: DeliveryStats = { delivered: 0, conflated: 0, slowClientCloses: 0 };
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly limits: ConnectionLimits & { streamMaxDurationMs: number }) {
    const tickMs = Math.max(
      10,
      Math.min(1000, Math.floor(Math.min(limits.heartbeatMs, limits.slowClientMs) / 4)),
    );
    this.timer = setInterval(() => this.sweep(), tickMs);
    this.timer.unref();
  }

  get size(): number {
    return this.connections.size;
  }

  /** A rotation deadline: STREAM_MAX_DURATION_MS ±10 %, so reconnects of a burst do not return together. */
  rotationDeadline(now: number): number {
    const jitter = (Math.random() * 0.2 - 0.1) * this.limits.streamMaxDurationMs;
    return now + Math.round(this.limits.streamMaxDurationMs + jitter);
  }

  add(connection: StreamConnection): void {
    this.connections.add(connection);
  }

  remove(connection: StreamConnection): void {
    this.connections.delete(connection);
  }

  /** Bytes waiting for clients across the process: bounded by conflation, whatever the clients do. */
  bufferedBytes(): number {
    let bytes = 0;
    for (const connection of this.connections) bytes += connection.bufferedBytes();
    return bytes;
  }

  sweep(now = Date.now()): void {
    for (const connection of this.connections) connection.sweep(now, this.limits);
  }

  /** Moves every deadline into [now, now + spreadMs] so that ends are spread, not sent at once. */
  spreadDeadlines(now: number, spreadMs: number): void {
    for (const connection of this.connections) {
      connection.deadline = Math.min(connection.deadline, now + Math.floor(Math.random() * spreadMs));
    }
  }

  endAll(): void {
    for (const connection of this.connections) connection.end();
  }

  close(): void {
    clearInterval(this.timer);
  }
}
