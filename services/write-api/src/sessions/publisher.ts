import { type BusConnection, confirmPublished, publishSession } from '@wizard-stream/bus';
import { sessionSubject } from '@wizard-stream/contracts';
import type { DatabaseSchema } from '@wizard-stream/db';
import { spanTraceHeaders, tracer } from '@wizard-stream/telemetry';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { WriteApiMetrics } from '../metrics.js';
import { markPublished, type StoredSession } from './queries.js';
import type { SessionSerializer } from './serializer.js';

export interface PublisherOptions {
  db: Kysely<DatabaseSchema>;
  bus: BusConnection;
  metrics: WriteApiMetrics;
  logger: FastifyBaseLogger;
  serialize: SessionSerializer;
  /**
   * How long publishes are collected before one NATS round trip confirms them all and one statement
   * moves their markers. Far below the relay's grace period, so the relay never republishes a version
   * only because its confirmation was still being collected.
   */
  confirmWindowMs?: number;
  confirmTimeoutMs?: number;
}

export type PublishOutcome = { ok: true } | { ok: false; error: string };

/**
 * How long a confirmed publish is remembered. Core NATS answers a flush before it has passed the
 * messages on to the other nodes of the cluster, so a node killed right after confirming can take
 * them with it; the relay publishes what was confirmed this long before a disconnect once more.
 */
export const RECENT_CONFIRMATIONS_MS = 2000;

/**
 * Publishes committed sessions and records which versions NATS has confirmed. Confirmation and the
 * `published_version` write are batched, so the upsert path pays for neither; anything not confirmed
 * (NATS down, process killed) stays behind the marker and the relay publishes it later.
 */
export class SessionPublisher {
  private pending = new Map<string, { version: number; committedAt: number }>();
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private readonly confirmWindowMs: number;
  private readonly confirmTimeoutMs: number;
  /** Row id → when its latest publish was confirmed, oldest first (see RECENT_CONFIRMATIONS_MS). */
  private readonly recentlyConfirmed = new Map<string, number>();

  constructor(private readonly options: PublisherOptions) {
    this.confirmWindowMs = options.confirmWindowMs ?? 50;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? 5000;
  }

  /**
   * Publishes a committed version, as `payload` when the caller already serialized it (the upsert's
   * response). Never throws: whatever goes wrong with this row (its serialization, a payload over the
   * server's max_payload, no connection) is logged with its team and session and returned, and the
   * version stays behind the publish marker for the relay.
   */
  publish({ id: rowId, record, committedAt }: StoredSession, payload?: string): PublishOutcome {
    const { bus, metrics, logger, serialize } = this.options;
    const span = tracer('write-api').startSpan('wizard.publish', {
      attributes: {
        'messaging.system': 'nats',
        'wizard.session_id': record.sessionId,
        'wizard.version': record.version,
      },
    });
    try {
      const bytes = payload ?? serialize(record);
      const subject = sessionSubject(record.teamId, record.workflowId, record.skillId);
      span.setAttribute('messaging.destination.name', subject);
      // The publish span is the parent of every gateway's fan-out span for this version.
      const { traceparent, tracestate } = spanTraceHeaders(span);
      publishSession(bus, {
        subject,
        payload: bytes,
        sessionId: record.sessionId,
        version: record.version,
        committedAtMs: committedAt.getTime(),
        traceparent,
        tracestate,
      });
      metrics.publishes.inc({ outcome: 'published' });
      const previous = this.pending.get(rowId);
      if (!previous || previous.version < record.version) {
        this.pending.set(rowId, { version: record.version, committedAt: committedAt.getTime() });
      }
      this.scheduleFlush();
      return { ok: true };
    } catch (error) {
      metrics.publishes.inc({ outcome: 'failed' });
      logger.warn(
        { err: error, teamId: record.teamId, sessionId: record.sessionId, version: record.version },
        'publish failed; the relay will retry',
      );
      return { ok: false, error: error instanceof Error ? error.message : String(error) };
    } finally {
      span.end();
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.flushing) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      void this.flush();
    }, this.confirmWindowMs);
  }

  /** Confirms what was published so far with one round trip, then moves the markers. */
  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    if (this.pending.size === 0) return;
    const batch = this.pending;
    this.pending = new Map();
    this.flushing = (async () => {
      const { bus, db, metrics, logger } = this.options;
      try {
        await confirmPublished(bus, this.confirmTimeoutMs);
        const now = Date.now();
        for (const { committedAt } of batch.values())
          metrics.publishConfirmLatency.observe((now - committedAt) / 1000);
        metrics.publishes.inc({ outcome: 'confirmed' }, batch.size);
        this.rememberConfirmed(batch.keys(), now);
        await markPublished(db, new Map([...batch].map(([id, { version }]) => [id, version])));
      } catch (error) {
        // Not confirmed or not recorded: the relay republishes these versions after its grace period.
        logger.warn(
          { err: error, versions: batch.size },
          'could not confirm publishes; leaving them to the relay',
        );
      } finally {
        this.flushing = undefined;
        if (this.pending.size > 0) this.scheduleFlush();
      }
    })();
    return this.flushing;
  }

  private rememberConfirmed(rowIds: Iterable<string>, now: number): void {
    for (const rowId of rowIds) {
      // Re-inserted so that the map stays ordered by confirmation time.
      this.recentlyConfirmed.delete(rowId);
      this.recentlyConfirmed.set(rowId, now);
    }
    for (const [rowId, confirmedAt] of this.recentlyConfirmed) {
      if (confirmedAt >= now - RECENT_CONFIRMATIONS_MS) break;
      this.recentlyConfirmed.delete(rowId);
    }
  }

  /** Rows whose latest publish NATS confirmed within RECENT_CONFIRMATIONS_MS before `until`. */
  confirmedShortlyBefore(until: number): string[] {
    const since = until - RECENT_CONFIRMATIONS_MS;
    const rowIds: string[] = [];
    for (const [rowId, confirmedAt] of this.recentlyConfirmed) {
      if (confirmedAt >= since && confirmedAt <= until) rowIds.push(rowId);
    }
    return rowIds;
  }

  async close(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.flushing;
    await this.flush();
  }
}
