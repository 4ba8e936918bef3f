import type { BusConnection } from '@wizard-stream/bus';
import type { DatabaseSchema } from '@wizard-stream/db';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { WriteApiMetrics } from '../metrics.js';
import { PeriodicTask } from '../periodic-task.js';
import type { SessionPublisher } from './publisher.js';
import {
  type PublishFailure,
  publishBacklog,
  recordPublishFailures,
  sessionsByRowIds,
  unpublishedSessions,
} from './queries.js';

export interface RelayOptions {
  db: Kysely<DatabaseSchema>;
  bus: BusConnection;
  publisher: SessionPublisher;
  metrics: WriteApiMetrics;
  logger: FastifyBaseLogger;
  intervalMs: number;
  /** A version younger than this is still in its own post-commit publish; the relay leaves it alone. */
  graceMs: number;
  /** Failed publishes of one version before the row is set aside (dead-lettered). */
  maxAttempts: number;
  batchSize?: number;
}

/**
 * Re-publishes committed versions whose publish was never confirmed: NATS was down at commit time, or
 * the process died between commit and publish. Every replica runs one; a duplicate publish is harmless
 * because subscribers drop versions they already have.
 */
export class Relay {
  private readonly loop: PeriodicTask;
  private stopWatchingReconnects: (() => void) | undefined;

  constructor(private readonly options: RelayOptions) {
    this.loop = new PeriodicTask(options.intervalMs, () => this.tick());
  }

  start(): void {
    this.loop.start();
    this.stopWatchingReconnects = this.options.bus.onReconnect(({ disconnectedAt }) => {
      if (disconnectedAt !== undefined) void this.republishConfirmedBefore(disconnectedAt);
    });
  }

  stop(): Promise<void> {
    this.stopWatchingReconnects?.();
    return this.loop.stop();
  }

  /**
   * After a reconnect: the node this replica was connected to may have died after confirming its last
   * publishes but before passing them to the rest of the cluster, so those versions are published again
   * (subscribers drop the ones they already have). Returns how many versions were published.
   */
  async republishConfirmedBefore(disconnectedAt: number): Promise<number> {
    const { db, publisher, metrics, logger } = this.options;
    try {
      const sessions = await sessionsByRowIds(db, publisher.confirmedShortlyBefore(disconnectedAt));
      const published = sessions.filter((session) => publisher.publish(session).ok).length;
      if (published > 0) {
        metrics.relayRepublished.inc(published);
        logger.info(
          { versions: published },
          'relay republished versions confirmed just before a NATS disconnect',
        );
        await publisher.flush();
      }
      return published;
    } catch (error) {
      logger.warn({ err: error }, 'republishing after a NATS reconnect failed');
      return 0;
    }
  }

  /**
   * One pass: measure the backlog, then publish what is overdue (when NATS is there to take it). Each
   * row is published on its own: one that fails is counted, retried after a backoff and, after
   * `maxAttempts` failures, set aside, so it never holds up the rows after it or fills later batches.
   * Returns how many versions were published.
   */
  async tick(): Promise<number> {
    const { db, bus, publisher, metrics, logger, graceMs } = this.options;
    try {
      const backlog = await publishBacklog(db);
      metrics.relayBacklog.set(backlog.count);
      metrics.relayOldestAge.set(
        backlog.oldest ? Math.max(0, (Date.now() - backlog.oldest.getTime()) / 1000) : 0,
      );
      metrics.relayDeadLettered.set(backlog.deadLettered);
      if (backlog.count === 0 || !bus.isConnected()) return 0;
      const overdue = await unpublishedSessions(db, graceMs, this.options.batchSize ?? 500);
      let published = 0;
      const failures: PublishFailure[] = [];
      for (const session of overdue) {
        const outcome = publisher.publish(session);
        if (outcome.ok) published++;
        else failures.push({ id: session.id, version: session.record.version, error: outcome.error });
      }
      if (failures.length > 0) await this.recordFailures(failures);
      if (published > 0) {
        metrics.relayRepublished.inc(published);
        logger.info({ versions: published }, 'relay republished committed versions');
        await publisher.flush();
      }
      return published;
    } catch (error) {
      logger.warn({ err: error }, 'relay pass failed');
      return 0;
    }
  }

  private async recordFailures(failures: PublishFailure[]): Promise<void> {
    const { db, metrics, logger, maxAttempts, intervalMs } = this.options;
    metrics.relayFailures.inc(failures.length);
    // While NATS is away every publish fails alike: that is the connection's failure, not the rows'.
    if (!this.options.bus.isConnected()) return;
    const setAside = await recordPublishFailures(db, failures, { maxAttempts, baseDelayMs: intervalMs });
    for (const row of setAside) {
      metrics.relayDeadLetters.inc();
      logger.error(
        {
          teamId: row.teamId,
          sessionId: row.sessionId,
          version: row.version,
          attempts: row.attempts,
          error: row.error,
        },
        'relay set a session aside after repeated publish failures (dead letter)',
      );
    }
  }
}
