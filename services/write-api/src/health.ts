import { pingDatabase } from '@wizard-stream/db';
import type { FastifyInstance } from 'fastify';
import { healthRouteSchemas as schemas } from './openapi/route-schemas.js';

const READINESS_TIMEOUT_MS = 2000;

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * Liveness, readiness and Prometheus metrics. Readiness needs the database, not NATS: while NATS is away
 * every write still commits and the relay publishes it on NATS's return, so taking replicas out of
 * rotation would turn a delivery delay into a write outage. The NATS state is reported in the body.
 */
export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', { schema: schemas.healthz }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: schemas.readyz }, async (_request, reply) => {
    const { database, bus } = app.services;
    const checks = { accepting: app.accepting, database: false, nats: bus.isConnected() };
    try {
      await withTimeout(pingDatabase(database.db), READINESS_TIMEOUT_MS);
      checks.database = true;
    } catch {
      checks.database = false;
    }
    const ready = checks.accepting && checks.database;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'unready', checks });
  });

  app.get('/metrics', { schema: schemas.metrics }, async (_request, reply) => {
    const { metrics, database, bus } = app.services;
    const pool = database.poolStats();
    metrics.dbPool.set({ state: 'total' }, pool.total);
    metrics.dbPool.set({ state: 'idle' }, pool.idle);
    metrics.dbPool.set({ state: 'waiting' }, pool.waiting);
    metrics.natsConnected.set(bus.isConnected() ? 1 : 0);
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
}
