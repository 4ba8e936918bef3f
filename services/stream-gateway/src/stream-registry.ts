import { type ConnectionLimits, StreamConnection } from './connection.js';
import type { DeliveryEvents, GaugeRegistry } from './metrics.js';

/**
 * Every connection of the process and the one timer that serves them all: heartbeats, slow-client
 * closes and rotation deadlines are checked by a sweep instead of a timer per connection.
 */
export class StreamRegistry {
  readonly connections = new Set<StreamConnection>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly limits: ConnectionLimits & { streamMaxDurationMs: number; maxClientBufferBytes: number },
    private readonly delivery: DeliveryEvents,
    gauges: GaugeRegistry,
  ) {
    gauges.gauge('openStreams', () => this.connections.size);
    gauges.gauge('bufferedBytes', () => this.bufferedBytes());
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

  /** A new connection, counted from now on, rotated at STREAM_MAX_DURATION_MS from `now`. */
  connect(lastEventId: string | undefined, now: number): StreamConnection {
    const connection = new StreamConnection(
      this.delivery,
      this.rotationDeadline(now),
      lastEventId,
      this.limits.maxClientBufferBytes,
    );
    this.connections.add(connection);
    return connection;
  }

  remove(connection: StreamConnection): void {
    this.connections.delete(connection);
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

  /** STREAM_MAX_DURATION_MS ±10 %, so reconnects of a burst do not return together. */
  private rotationDeadline(now: number): number {
    const jitter = (Math.random() * 0.2 - 0.1) * this.limits.streamMaxDurationMs;
    return now + Math.round(this.limits.streamMaxDurationMs + jitter);
  }

  /** Bytes waiting for clients across the process: at most MAX_CLIENT_BUFFER_BYTES (plus one frame) each. */
  private bufferedBytes(): number {
    let bytes = 0;
    for (const connection of this.connections) bytes += connection.bufferedBytes();
    return bytes;
  }
}
