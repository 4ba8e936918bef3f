import type { DatabaseSchema } from '@wizard-stream/db';
import type { FastifyBaseLogger } from 'fastify';
import type { Kysely } from 'kysely';
import type { WriteApiMetrics } from '../metrics.js';
import { PeriodicTask } from '../periodic-task.js';
import type { SessionPublisher } from './publisher.js';
import { markStaleSessions } from './queries.js';

export interface StalenessSweeperOptions {
  db: Kysely<DatabaseSchema>;
  publisher: SessionPublisher;
  metrics: WriteApiMetrics;
  logger: FastifyBaseLogger;
  staleAfterMs: number;
  intervalMs: number;
}

/**
 * Pushes staleness instead of leaving it to be computed on read: a running or idle session that stops
 * being updated gets a new version (is_stale: true) that every open stream receives. The transition is
 * a single conditional UPDATE, so with several replicas sweeping each session is transitioned once.
 */
export class StalenessSweeper {
  private readonly loop: PeriodicTask;

  constructor(private readonly options: StalenessSweeperOptions) {
    this.loop = new PeriodicTask(options.intervalMs, () => this.sweep());
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  async sweep(): Promise<number> {
    const { db, publisher, metrics, logger, staleAfterMs } = this.options;
    try {
      const transitioned = await markStaleSessions(db, staleAfterMs);
      // publish() never throws: a row that fails is logged there and left to the relay, the rest go out.
      for (const session of transitioned) publisher.publish(session);
      metrics.stalenessTransitions.inc(transitioned.length);
      return transitioned.length;
    } catch (error) {
      logger.warn({ err: error }, 'staleness sweep failed');
      return 0;
    }
  }
}
