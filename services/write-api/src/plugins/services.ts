import type { BusConnection } from '@wizard-stream/bus';
import type { Database } from '@wizard-stream/db';
import type { AuthFailureThrottle } from '@wizard-stream/http';
import fp from 'fastify-plugin';
import type { CredentialChecker } from '../auth/credentials.js';
import type { RateLimiter } from '../auth/rate-limiter.js';
import type { WriteApiConfig } from '../config.js';
import type { WriteApiMetrics } from '../metrics.js';
import type { SessionCommitter } from '../sessions/commit.js';
import type { SessionSerializer } from '../sessions/serializer.js';

/** The long-lived parts every route uses, created once by app.ts and shared as decorators. */
export interface WriteApiServices {
  config: WriteApiConfig;
  database: Database;
  bus: BusConnection;
  /** The write path: commit, then publish. */
  commits: SessionCommitter;
  /** The read path's DTO bytes, the same serializer the publisher uses. */
  serialize: SessionSerializer;
  credentials: CredentialChecker;
  rateLimiter: RateLimiter;
  /** Failed authentications per client address (AUTH_FAILURES_PER_MIN). */
  authFailures: AuthFailureThrottle;
  metrics: WriteApiMetrics;
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
