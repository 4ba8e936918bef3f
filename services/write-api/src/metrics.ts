import {
  Counter,
  createMetricsRegistry,
  Gauge,
  Histogram,
  LATENCY_BUCKETS_SECONDS,
} from '@wizard-stream/telemetry';
import type { Registry } from 'prom-client';

export interface WriteApiMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route'>;
  upserts: Counter<'result'>;
  publishes: Counter<'outcome'>;
  publishConfirmLatency: Histogram;
  relayBacklog: Gauge;
  relayOldestAge: Gauge;
  relayRepublished: Counter;
  relayFailures: Counter;
  relayDeadLetters: Counter;
  relayDeadLettered: Gauge;
  stalenessTransitions: Counter;
  dbPool: Gauge<'state'>;
  natsConnected: Gauge;
  latestPolls: Counter<'source' | 'result'>;
}

export function createWriteApiMetrics(): WriteApiMetrics {
  const registry = createMetricsRegistry('write-api');
  const registers = [registry];
  return {
    registry,
    httpRequests: new Counter({
      name: 'wizard_http_requests_total',
      help: 'HTTP requests by route and status',
      labelNames: ['method', 'route', 'status'],
      registers,
    }),
    httpDuration: new Histogram({
      name: 'wizard_http_request_duration_seconds',
      help: 'HTTP request duration',
      labelNames: ['method', 'route'],
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    }),
    upserts: new Counter({
      name: 'wizard_upserts_total',
      help: 'Session upserts by result (created, updated, forbidden, invalid, too_large, shed)',
      labelNames: ['result'],
      registers,
    }),
    publishes: new Counter({
      name: 'wizard_publish_total',
      help: 'Session publishes to NATS by outcome (published, confirmed, failed)',
      labelNames: ['outcome'],
      registers,
    }),
    publishConfirmLatency: new Histogram({
      name: 'wizard_publish_confirm_seconds',
      help: 'Time from commit to NATS confirming the publish',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    }),
    relayBacklog: new Gauge({
      name: 'wizard_relay_backlog',
      help: 'Committed session versions not yet confirmed published',
      registers,
    }),
    relayOldestAge: new Gauge({
      name: 'wizard_relay_oldest_age_seconds',
      help: 'Age of the oldest committed but unpublished session version',
      registers,
    }),
    relayRepublished: new Counter({
      name: 'wizard_relay_republished_total',
      help: 'Session versions published by the relay rather than after their commit (failed publishes excluded)',
      registers,
    }),
    relayFailures: new Counter({
      name: 'wizard_relay_failures_total',
      help: 'Relay publishes of a session version that failed (each is retried with backoff)',
      registers,
    }),
    relayDeadLetters: new Counter({
      name: 'wizard_relay_dead_letters_total',
      help: 'Sessions the relay set aside after RELAY_MAX_ATTEMPTS failed publishes',
      registers,
    }),
    relayDeadLettered: new Gauge({
      name: 'wizard_relay_dead_lettered',
      help: 'Sessions currently set aside (dead-lettered) by the relay, across all replicas',
      registers,
    }),
    stalenessTransitions: new Counter({
      name: 'wizard_staleness_transitions_total',
      help: 'Sessions recorded as stale by this replica',
      registers,
    }),
    dbPool: new Gauge({
      name: 'wizard_db_pool_connections',
      help: 'Database pool connections by state (total, idle, waiting requests)',
      labelNames: ['state'],
      registers,
    }),
    natsConnected: new Gauge({
      name: 'wizard_nats_connected',
      help: '1 while connected to NATS',
      registers,
    }),
    latestPolls: new Counter({
      name: 'wizard_latest_requests_total',
      help: 'Calls of …/latest/ by X-Wizard-Poll-Source (sdk, transport, detector, dashboard, other, none) and result (hit, not_modified, empty, killswitch)',
      labelNames: ['source', 'result'],
      registers,
    }),
  };
}
