import type { FastifyInstance } from 'fastify';

/** Liveness, readiness (NATS connected and not draining) and Prometheus metrics. */
export async function healthRoutes(app: FastifyInstance): Promise<void> {
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_request, reply) => {
    const { bus, draining } = app.gateway;
    const natsConnected = bus.isConnected();
    const ready = natsConnected && !draining;
    return reply
      .code(ready ? 200 : 503)
      .send({ status: ready ? 'ready' : 'unready', natsConnected, draining });
  });

  app.get('/metrics', async (_request, reply) => {
    const { registry } = app.gateway.metrics;
    return reply.header('content-type', registry.contentType).send(await registry.metrics());
  });
}
