import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export { Counter, Gauge, Histogram, Registry };

/**
 * One registry per service, with the process metrics Prometheus users expect. prom-client rather than
 * the OpenTelemetry Prometheus exporter: increments on the fan-out hot path stay a property write, and
 * /metrics works whether or not an OTLP endpoint is configured.
 */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Latency buckets in seconds, from sub-millisecond loopback to the 10 s delivery bound. */
export const LATENCY_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
