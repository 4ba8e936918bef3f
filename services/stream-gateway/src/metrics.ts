import {
  Counter,
  createMetricsRegistry,
  Gauge,
  Histogram,
  LATENCY_BUCKETS_SECONDS,
  type Registry,
} from '@wizard-stream/telemetry';

/** What a connection reports, once per frame on the hot path: a plain field increment each. */
export interface DeliveryEvents {
  onDelivered(): void;
  onConflated(): void;
  onSlowClose(): void;
}

/** Every connection's delivery events, summed in plain fields; Prometheus reads them at scrape time. */
export class DeliveryCounts implements DeliveryEvents {
  delivered = 0;
  conflated = 0;
  slowClientCloses = 0;

  onDelivered(): void {
    this.delivered++;
  }

  onConflated(): void {
    this.conflated++;
  }

  onSlowClose(): void {
    this.slowClientCloses++;
  }
}

/** What the NATS side reports per message: the frame is written, `committedAtMs` is its commit time. */
export interface FanoutEvents {
  onFannedOut(committedAtMs: number): void;
}

export type SnapshotPurpose = 'connect' | 'resnapshot';
export type SnapshotOutcome = 'ok' | 'empty' | 'refused' | 'unavailable';

/** What the snapshot client reports per write-api call. */
export interface SnapshotEvents {
  onSnapshotCall(outcome: SnapshotOutcome, purpose: SnapshotPurpose): void;
}

/** The gauges of the gateway; each is registered by the part that holds its value. */
const GAUGES = {
  openStreams: {
    name: 'wizard_gateway_open_streams',
    help: 'SSE connections open or waiting for their snapshot',
  },
  subscriptions: {
    name: 'wizard_gateway_nats_subscriptions',
    help: 'NATS subscriptions held (one per distinct subject)',
  },
  // The same name as write-api's, so one alert covers every pod that lost NATS.
  natsConnected: { name: 'wizard_nats_connected', help: '1 while connected to NATS' },
  bufferedBytes: {
    name: 'wizard_gateway_buffered_bytes',
    help: 'Bytes waiting for clients: socket write buffers plus frames held back per session',
  },
} as const;

export type GaugeName = keyof typeof GAUGES;

/** Where a part registers the gauge it holds the value of; `read` runs at scrape time. */
export interface GaugeRegistry {
  gauge(name: GaugeName, read: () => number): void;
}

/**
 * The gateway's Prometheus metrics: the one catalog of names and help texts, and the sink every part
 * reports to. Per-connection events are summed in plain fields and handed to prom-client at scrape time,
 * so the fan-out never pays for label lookups.
 */
export class GatewayMetrics implements FanoutEvents, SnapshotEvents, GaugeRegistry {
  readonly registry: Registry = createMetricsRegistry('stream-gateway');
  /** The sink of the connections' events (handed to them by the registry). */
  readonly delivery = new DeliveryCounts();
  private readonly commitToWriteSeconds: Histogram;
  private readonly snapshotCalls: Counter<'outcome' | 'purpose'>;

  constructor() {
    const registers = [this.registry];
    counterOf(
      registers,
      'wizard_gateway_frames_delivered_total',
      'Session frames written to client sockets',
      () => this.delivery.delivered,
    );
    counterOf(
      registers,
      'wizard_gateway_frames_conflated_total',
      'Pending frames replaced by a newer version of the same session before they were written',
      () => this.delivery.conflated,
    );
    counterOf(
      registers,
      'wizard_gateway_slow_client_closes_total',
      'Connections closed as slow: their socket did not drain within SLOW_CLIENT_MS, or what waited for them would pass MAX_CLIENT_BUFFER_BYTES',
      () => this.delivery.slowClientCloses,
    );
    this.commitToWriteSeconds = new Histogram({
      name: 'wizard_gateway_commit_to_write_seconds',
      help: 'From Wizard-Committed-At to the frame being written to the client sockets',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.snapshotCalls = new Counter({
      name: 'wizard_gateway_snapshot_calls_total',
      help: 'Snapshot reads from write-api (latest/ on connect, the session list on resnapshot), by outcome and purpose',
      labelNames: ['outcome', 'purpose'],
      registers,
    });
  }

  gauge(name: GaugeName, read: () => number): void {
    new Gauge({
      ...GAUGES[name],
      registers: [this.registry],
      collect() {
        this.set(read());
      },
    });
  }

  onFannedOut(committedAtMs: number): void {
    this.commitToWriteSeconds.observe(Math.max(0, Date.now() - committedAtMs) / 1000);
  }

  onSnapshotCall(outcome: SnapshotOutcome, purpose: SnapshotPurpose): void {
    this.snapshotCalls.inc({ outcome, purpose });
  }
}

/** A counter whose total is kept elsewhere (a plain field on the hot path) and read at scrape time. */
function counterOf(registers: Registry[], name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers,
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
