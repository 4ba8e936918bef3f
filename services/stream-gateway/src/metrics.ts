import {
  Counter,
  createMetricsRegistry,
  Gauge,
  Histogram,
  LATENCY_BUCKETS_SECONDS,
  type Registry,
} from '@wizard-stream/telemetry';

export interface GatewayStats {
  openStreams: number;
  subscriptions: number;
  delivered: number;
  conflated: number;
  slowClientCloses: number;
  bufferedBytes: () => number;
  natsConnected: boolean;
}

/**
 * The gateway's Prometheus metrics. Per-connection events are summed in plain fields on the hot path and
 * handed to prom-client once per message (or at scrape time), so fan-out never pays for label lookups.
 */
export class GatewayMetrics {
  readonly registry: Registry;
  readonly commitToWriteSeconds: Histogram;
  readonly snapshotCalls: Counter<'outcome' | 'purpose'>;

  constructor(readStats: () => GatewayStats) {
    this.registry = createMetricsRegistry('stream-gateway');
    const registers = [this.registry];
    new Gauge({
      name: 'wizard_gateway_open_streams',
      help: 'SSE connections open or waiting for their snapshot',
      registers,
      collect() {
        this.set(readStats().openStreams);
      },
    });
    new Gauge({
      name: 'wizard_gateway_nats_subscriptions',
      help: 'NATS subscriptions held (one per distinct subject)',
      registers,
      collect() {
        this.set(readStats().subscriptions);
      },
    });
    new Gauge({
      // The same name as write-api's, so one alert covers every pod that lost NATS.
      name: 'wizard_nats_connected',
      help: '1 while connected to NATS',
      registers,
      collect() {
        this.set(readStats().natsConnected ? 1 : 0);
      },
    });
    new Gauge({
      name: 'wizard_gateway_buffered_bytes',
      help: 'Bytes waiting for clients: socket write buffers plus frames held back per session',
      registers,
      collect() {
        this.set(readStats().bufferedBytes());
      },
    });
    counterOf(
      registers,
      'wizard_gateway_frames_delivered_total',
      'Session frames written to client sockets',
      () => readStats().delivered,
    );
    counterOf(
      registers,
      'wizard_gateway_frames_conflated_total',
      'Pending frames replaced by a newer version of the same session before they were written',
      () => readStats().conflated,
    );
    counterOf(
      registers,
      'wizard_gateway_slow_client_closes_total',
      'Connections closed because their socket did not drain within SLOW_CLIENT_MS',
      () => readStats().slowClientCloses,
    );
    this.commitToWriteSeconds = new Histogram({
      name: 'wizard_gateway_commit_to_write_seconds',
      help: 'From Wizard-Committed-At to the frame being written to the client sockets',
      buckets: LATENCY_BUCKETS_SECONDS,
      registers,
    });
    this.snapshotCalls = new Counter({
      name: 'wizard_gateway_snapshot_calls_total',
      help: 'Calls to write-api latest, by outcome and purpose (connect or resnapshot)',
      labelNames: ['outcome', 'purpose'],
      registers,
    });
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
