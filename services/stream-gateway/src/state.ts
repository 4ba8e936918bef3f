import type { BusConnection } from '@wizard-stream/bus';
import type { AuthFailureThrottle } from '@wizard-stream/http';
import type { StreamGatewayConfig } from './config.js';
import type { GatewayMetrics } from './metrics.js';
import type { SnapshotClient } from './snapshot.js';
import type { StreamRegistry } from './stream-registry.js';
import type { SubscriptionHub } from './subscriptions.js';

/** What the routes share, decorated on the Fastify instance as `gateway`. */
export interface GatewayState {
  config: StreamGatewayConfig;
  bus: BusConnection;
  hub: SubscriptionHub;
  registry: StreamRegistry;
  snapshots: SnapshotClient;
  metrics: GatewayMetrics;
  /** Failed authentications per client address (AUTH_FAILURES_PER_MIN). */
  authFailures: AuthFailureThrottle;
  /** Set by the drain: readiness is false and new streams get 503. */
  draining: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    gateway: GatewayState;
  }
}
