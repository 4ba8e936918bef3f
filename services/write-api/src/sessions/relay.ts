import type { BusConnection } from '@wizard-stream/bus';
import type { DatabaseSchema } from '@wizard-stream/db';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { WriteApiMetrics } from '../metrics.js';
import { PeriodicTask } from '../periodic-task.js';
import type { SessionPublisher } from './publisher.js';
import { publishBacklog, unpublishedSessions } from './queries.js';

export interface RelayOptions {
  db: Kysely<DatabaseSchema>;
  bus: BusConnection;
  publisher: SessionPublisher;
  metrics: WriteApiMetrics;
  logger: FastifyBaseLogger;
  intervalMs: number;
  /** A version younger than this is still in its own post-commit publish; the relay leaves it alone. */
  graceMs: number;
  batchSize?: number;
}

/**
 * Re-publishes committed versions whose publish was never confirmed: NATS was down at commit time, or
 * the process died between commit and publish. Every replica runs one; a duplicate publish is harmless
 * because subscribers drop versions they already have.
 */
export class Relay {
  private readonly loop: PeriodicTask;

  constructor(private readonly options: RelayOptions) {
    this.loop = new PeriodicTask(options.intervalMs, () => this.tick());
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One pass: measure the backlog, then publish what is overdue (when NATS is there to take it). */
  async tick(): Promise<number> {
    const { db, bus, publisher, metrics, logger, graceMs } = this.options;
    try {
      const backlog = await publishBacklog(db);
      metrics.relayBacklog.set(backlog.count);
      metrics.relayOldestAge.set(
        backlog.oldest ? Math.max(0, (Date.now() - backlog.oldest.getTime()) / 1000) : 0,
      );
      if (backlog.count === 0 || !bus.isConnected()) return 0;
      const overdue = await unpublishedSessions(db, graceMs, this.options.batchSize ?? 500);
      for (const session of overdue) publisher.publish(session);
      if (overdue.length > 0) {
        metrics.relayRepublished.inc(overdue.length);
        logger.info({ versions: overdue.length }, 'relay republished committed versions');
        await publisher.flush();
      }
      return overdue.length;
    } catch (error) {
      logger.warn({ err: error }, 'relay pass failed');
      return 0;
    }
  }
}
