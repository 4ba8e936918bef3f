import { type Revocation, revocationMatches, type StreamOwner } from '@wizard-stream/contracts';
import { LRUCache } from 'lru-cache';
import { type ConnectionLimits, StreamConnection } from './connection.js';
import type { DeliveryEvents, GaugeRegistry } from './metrics.js';

export interface RegistryLimits extends ConnectionLimits {
  streamMaxDurationMs: number;
  maxStreams: number;
  maxStreamsPerKey: number;
  maxClientBufferBytes: number;
}

/** What the registry knows of a connection's credential: the string at once, its owner once write-api named it. */
interface Holder {
  credential: string;
  owner: StreamOwner | undefined;
}

/**
 * How long a revocation is remembered: a connect authenticated by write-api just before the revocation
 * (its snapshot in flight), or by a replica whose auth cache (AUTH_CACHE_MS) has not expired yet, is
 * refused when it arrives instead of streaming with a revoked credential.
 */
const REVOCATION_MEMORY_MS = 5 * 60_000;
const REMEMBERED_REVOCATIONS = 10_000;

export type AuthenticateResult = 'ok' | 'key_limit' | 'revoked';

/**
 * Every connection of the process and the one timer that serves them all: heartbeats, slow-client
 * closes and rotation deadlines are checked by a sweep instead of a timer per connection.
 */
export class StreamRegistry {
  readonly connections = new Set<StreamConnection>();
  /**
   * Streams one key may hold here, waiting for their snapshot or open: MAX_STREAMS_PER_KEY, and never
   * more than half of MAX_STREAMS, so that no single key can fill the gateway.
   */
  readonly perKeyLimit: number;
  private readonly timer: NodeJS.Timeout;
  private readonly holders = new Map<StreamConnection, Holder>();
  private readonly perCredential = new Map<string, number>();
  private readonly perKey = new Map<number, number>();
  /** Recent revocations, indexed by the most specific id they name. */
  private readonly revocations = new LRUCache<string, Revocation[]>({
    max: REMEMBERED_REVOCATIONS,
    ttl: REVOCATION_MEMORY_MS,
  });

  constructor(
    private readonly limits: RegistryLimits,
    private readonly delivery: DeliveryEvents,
    gauges: GaugeRegistry,
  ) {
    this.perKeyLimit = Math.min(limits.maxStreamsPerKey, Math.max(1, Math.floor(limits.maxStreams / 2)));
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

  /**
   * A new connection, counted from now on (toward MAX_STREAMS, and toward its credential's share while
   * it waits for write-api to say whose it is), rotated at STREAM_MAX_DURATION_MS from `now`.
   */
  connect(lastEventId: string | undefined, now: number, credential: string): StreamConnection {
    const connection = new StreamConnection(
      this.delivery,
      this.rotationDeadline(now),
      lastEventId,
      this.limits.maxClientBufferBytes,
    );
    this.connections.add(connection);
    this.holders.set(connection, { credential, owner: undefined });
    increment(this.perCredential, credential);
    return connection;
  }

  /** Connections holding this exact credential, waiting or open. */
  credentialCount(credential: string): number {
    return this.perCredential.get(credential) ?? 0;
  }

  /**
   * Charges a connection to the key write-api found behind its credential: refused when the key holds
   * its share already, or when a revocation of it arrived while its snapshot was in flight.
   */
  authenticate(connection: StreamConnection, owner: StreamOwner): AuthenticateResult {
    const holder = this.holders.get(connection);
    if (!holder || holder.owner) return 'ok';
    if (this.isRevoked(owner)) return 'revoked';
    if ((this.perKey.get(owner.keyId) ?? 0) >= this.perKeyLimit) return 'key_limit';
    holder.owner = owner;
    increment(this.perKey, owner.keyId);
    return 'ok';
  }

  remove(connection: StreamConnection): void {
    this.connections.delete(connection);
    const holder = this.holders.get(connection);
    if (!holder) return;
    this.holders.delete(connection);
    decrement(this.perCredential, holder.credential);
    if (holder.owner) decrement(this.perKey, holder.owner.keyId);
  }

  /** Ends (`event: end`) every stream the revocation names and remembers it for connects in flight. */
  revoke(revocation: Revocation): number {
    const index = revocationIndex(revocation);
    this.revocations.set(index, [...(this.revocations.get(index) ?? []), revocation]);
    let ended = 0;
    for (const [connection, holder] of this.holders) {
      if (holder.owner && revocationMatches(revocation, holder.owner)) {
        connection.end();
        ended++;
      }
    }
    return ended;
  }

  private isRevoked(owner: StreamOwner): boolean {
    // The common case, on every connect: nothing revoked lately (the three lookups showed in connect profiles).
    if (this.revocations.size === 0) return false;
    for (const index of [`key:${owner.keyId}`, `user:${owner.userId}`, `team:${owner.teamId}`]) {
      if (this.revocations.get(index)?.some((revocation) => revocationMatches(revocation, owner)))
        return true;
    }
    return false;
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

function increment<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function decrement<K>(counts: Map<K, number>, key: K): void {
  const count = (counts.get(key) ?? 0) - 1;
  if (count > 0) counts.set(key, count);
  else counts.delete(key);
}

function revocationIndex(revocation: Revocation): string {
  if (revocation.key_id !== undefined) return `key:${revocation.key_id}`;
  if (revocation.user_id !== undefined) return `user:${revocation.user_id}`;
  return `team:${revocation.team_id}`;
}
