import cors from '@fastify/cors';
import { BusConnection, busOptionsOf, registerBusMetrics } from '@wizard-stream/bus';
import { AuthFailureThrottle, errorsPlugin } from '@wizard-stream/http';
import { loggerOptions } from '@wizard-stream/telemetry';
import Fastify, { type FastifyInstance } from 'fastify';
import type { StreamGatewayConfig } from './config.js';
import { healthRoutes } from './health.js';
import { GatewayMetrics } from './metrics.js';
import { resnapshotOnReconnect } from './resnapshot.js';
import { subscribeRevocations } from './revocations.js';
import { SnapshotClient } from './snapshot.js';
import type { GatewayState } from './state.js';
import { StreamRegistry } from './stream-registry.js';
import { streamRoutes } from './stream-route.js';
import { SubscriptionHub } from './subscriptions.js';

export interface BuildGatewayOptions {
  /** Where log lines go (default stdout); tests capture them here. */
  logStream?: NodeJS.WritableStream;
}

export interface Gateway {
  app: FastifyInstance;
  state: GatewayState;
  /** Stops the sweep, the NATS connection and the server (open sockets are destroyed). */
  close(): Promise<void>;
}

export async function buildGateway(
  config: StreamGatewayConfig,
  options: BuildGatewayOptions = {},
): Promise<Gateway> {
  const app = Fastify({
    logger: {
      ...loggerOptions('stream-gateway', config.logLevel),
      ...(options.logStream && { stream: options.logStream }),
    },
    // Open streams would otherwise keep close() waiting forever.
    forceCloseConnections: true,
    // The edge's request id (ingress, edge proxy), so its log lines and the gateway's name one request.
    requestIdHeader: 'x-request-id',
    // One hop: the Ingress (or the edge proxy). Its X-Forwarded-For entry is the client address that
    // failed authentications are counted against; entries further left are the client's own claims.
    trustProxy: (_address: string, hop: number) => hop < 1,
  });

  const metrics = new GatewayMetrics();
  const bus = new BusConnection({ ...busOptionsOf(config), name: 'stream-gateway', logger: app.log });
  metrics.gauge('natsConnected', () => (bus.isConnected() ? 1 : 0));
  registerBusMetrics(bus, metrics.registry);
  const registry = new StreamRegistry(config, metrics.delivery, metrics);
  const hub = new SubscriptionHub(bus, metrics, app.log);
  const snapshots = new SnapshotClient(
    config.writeApiUrl,
    config.writeApiInternalUrl,
    config.snapshotTimeoutMs,
    metrics,
    config.internalApiToken,
  );
  const authFailures = new AuthFailureThrottle(config.authFailuresPerMin);
  const state: GatewayState = {
    config,
    bus,
    hub,
    registry,
    snapshots,
    metrics,
    authFailures,
    draining: false,
  };
  const stopResnapshots = resnapshotOnReconnect(bus, hub, snapshots, config.internalApiToken, app.log);
  const stopRevocations = subscribeRevocations(bus, registry, app.log);

  app.decorate('gateway', state);
  await app.register(errorsPlugin);
  await app.register(cors, {
    origin: config.corsOrigins.length > 0 ? config.corsOrigins : false,
    methods: ['GET', 'HEAD', 'OPTIONS'],
    allowedHeaders: ['Authorization', 'Last-Event-ID', 'Cache-Control', 'Accept'],
    maxAge: 600,
  });
  await app.register(healthRoutes);
  await app.register(streamRoutes);

  return {
    app,
    state,
    close: async () => {
      stopResnapshots();
      stopRevocations();
      registry.close();
      await app.close();
      await bus.close();
      await snapshots.close();
    },
  };
}
