import type { BusConnection } from '@wizard-stream/bus';
import type { Database } from '@wizard-stream/db';
import fp from 'fastify-plugin';
import type { CredentialChecker } from '../auth/credentials.js';
import type { RateLimiter } from '../auth/rate-limiter.js';
import type { WriteApiConfig } from '../config.js';
import type { WriteApiMetrics } from '../metrics.js';
import type { SessionPublisher } from '../sessions/publisher.js';
import type { UpsertBatcher } from '../sessions/upsert-batcher.js';

/** The long-lived parts every route uses, created once by app.ts and shared as decorators. */
export interface WriteApiServices {
  config: WriteApiConfig;
  database: Database;
  bus: BusConnection;
  publisher: SessionPublisher;
  upserts: UpsertBatcher;
  credentials: CredentialChecker;
  rateLimiter: RateLimiter;
  metrics: WriteApiMetrics;
  /** Test seam: runs after a session commit and before its publish (the crash-after-commit test). */
  afterCommit?: (() => void) | undefined;
}

declare module 'fastify' {
  interface FastifyInstance {
    services: WriteApiServices;
    /** False once shutdown began: readiness fails so balancers stop sending traffic. */
    accepting: boolean;
  }
}

export const servicesPlugin = fp<{ services: WriteApiServices }>(
  async (app, { services }) => {
    app.decorate('services', services);
    app.decorate('accepting', true);
  },
  { name: 'services' },
);
