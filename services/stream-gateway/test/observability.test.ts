import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTestTelemetry, type TestTelemetry } from '@wizard-stream/telemetry/sdk';
import { until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

/** The sum of every sample of a metric family in a Prometheus text page (0 when it has none). */
function metricSum(page: string, name: string): number {
  let sum = 0;
  for (const line of page.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN)$/.exec(line);
    if (match?.[1] === name && match[3] !== 'NaN') sum += Number(match[3]);
  }
  return sum;
}

function parentSpanId(span: ReadableSpan): string | undefined {
  return span.parentSpanContext?.spanId;
}

/** True when `ancestor` is on the parent chain of `span` among `spans`. */
function descendsFrom(span: ReadableSpan, ancestor: ReadableSpan, spans: ReadableSpan[]): boolean {
  const bySpanId = new Map(spans.map((each) => [each.spanContext().spanId, each]));
  let current: ReadableSpan | undefined = span;
  while (current) {
    const parent = parentSpanId(current);
    if (parent === ancestor.spanContext().spanId) return true;
    current = parent ? bySpanId.get(parent) : undefined;
  }
  return false;
}

const WRITE_API_METRICS = [
  'wizard_upserts_total',
  'wizard_publish_total',
  'wizard_publish_confirm_seconds_count',
  'wizard_relay_backlog',
  'wizard_relay_oldest_age_seconds',
  'wizard_relay_republished_total',
  'wizard_staleness_transitions_total',
  'wizard_db_pool_connections',
  'wizard_nats_connected',
  'wizard_http_requests_total',
  'wizard_http_request_duration_seconds_count',
];

const GATEWAY_METRICS = [
  'wizard_gateway_open_streams',
  'wizard_gateway_nats_subscriptions',
  'wizard_gateway_frames_delivered_total',
  'wizard_gateway_frames_conflated_total',
  'wizard_gateway_slow_client_closes_total',
  'wizard_gateway_commit_to_write_seconds_count',
  'wizard_gateway_snapshot_calls_total',
  'wizard_gateway_buffered_bytes',
  'wizard_nats_connected',
];

describe('observability across write-api, NATS and the gateway', () => {
  let telemetry: TestTelemetry;
  let stack: TestStack;
  let gateway: RunningStreamGateway;
  let stream: SseStream | undefined;

  beforeAll(async () => {
    // Before any Fastify instance exists, as under the services' preload.
    telemetry = startTestTelemetry({ serviceName: 'wizard-stream-e2e' });
    stack = await TestStack.start('postgres');
    gateway = await stack.startGateway();
  }, 60_000);

  afterAll(async () => {
    stream?.close();
    await stack?.close();
    await telemetry?.shutdown();
  }, 30_000);

  it('one upsert yields request → transaction → publish → fan-out spans in the CLI caller’s trace', async () => {
    const team = stack.teams[0];
    stream = await openStream(stack.streamUrl(gateway.url, team.teamId, 'wf-otel', 'setup'), {
      authorization: `Bearer ${team.apiKey}`,
    });
    expect(stream.status).toBe(200);
    telemetry.exporter.reset();

    const callerTraceId = 'a3ce929d0e0e47364bf92f3577b34da6';
    const callerSpanId = 'b7ad6b7169203331';
    const response = await fetch(`${stack.writeApi.url}/api/projects/${team.teamId}/wizard/sessions/`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${team.apiKey}`,
        'content-type': 'application/json',
        traceparent: `00-${callerTraceId}-${callerSpanId}-01`,
      },
      body: JSON.stringify({
        session_id: 'traced-run',
        workflow_id: 'wf-otel',
        skill_id: 'setup',
        started_at: '2026-01-01T00:00:00Z',
        run_phase: 'running',
        tasks: [],
      }),
    });
    expect(response.status).toBe(201);
    const open = stream;
    await open.waitFor(() => open.latestVersion('traced-run') === 1, { what: 'the traced session' });

    const fanout = await until(() =>
      telemetry.exporter.getFinishedSpans().find((span) => span.name === 'wizard.fanout'),
    );
    const spans = telemetry.exporter.getFinishedSpans();
    const inTrace = spans.filter((span) => span.spanContext().traceId === callerTraceId);
    const request = inTrace.find((span) => parentSpanId(span) === callerSpanId);
    const transaction = inTrace.find((span) => span.name === 'wizard.upsert_transaction');
    const publish = inTrace.find((span) => span.name === 'wizard.publish');
    expect(request, `a request span under the caller's span among ${spans.map((s) => s.name)}`).toBeDefined();
    expect(transaction).toBeDefined();
    expect(publish).toBeDefined();
    if (!request || !transaction || !publish) return;

    expect(descendsFrom(transaction, request, spans)).toBe(true);
    expect(descendsFrom(publish, request, spans)).toBe(true);
    // The publish starts after the transaction has committed. A span's start comes from the millisecond
    // wall clock and its end from the sub-millisecond monotonic one, so "after" holds to within 1 ms.
    const CLOCK_RESOLUTION_NS = 1e6;
    expect(publish.startTime[0] * 1e9 + publish.startTime[1] + CLOCK_RESOLUTION_NS).toBeGreaterThanOrEqual(
      transaction.endTime[0] * 1e9 + transaction.endTime[1],
    );
    // Across NATS: the gateway's fan-out continues the trace as a child of the publish.
    expect(fanout.spanContext().traceId).toBe(callerTraceId);
    expect(parentSpanId(fanout)).toBe(publish.spanContext().spanId);
    expect(fanout.attributes['wizard.connections']).toBe(1);
  });

  it('exposes every named metric on both services, and their values move when updates flow', {
    timeout: 30_000,
  }, async () => {
    const team = stack.teams[1];
    const scrape = async () => ({
      writeApi: await (await fetch(`${stack.writeApi.url}/metrics`)).text(),
      gateway: await (await fetch(`${gateway.url}/metrics`)).text(),
    });
    const before = await scrape();
    for (const name of WRITE_API_METRICS)
      expect(before.writeApi, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));
    for (const name of GATEWAY_METRICS) expect(before.gateway, name).toMatch(new RegExp(`^${name}[{ ]`, 'm'));

    const metricsStream = await openStream(stack.streamUrl(gateway.url, team.teamId, 'wf-metrics'), {
      authorization: `Bearer ${team.apiKey}`,
    });
    try {
      for (let index = 0; index < 5; index++) {
        await stack.upsert(team, { sessionId: 'metered', workflowId: 'wf-metrics', skillId: 'a' });
      }
      await metricsStream.waitFor(() => metricsStream.latestVersion('metered') === 5, {
        what: 'five metered versions',
      });
      const during = await until(async () => {
        const page = await scrape();
        // Confirmations are batched per session: wait until one has covered this test's publishes.
        return metricSum(page.writeApi, 'wizard_publish_confirm_seconds_count') >
          metricSum(before.writeApi, 'wizard_publish_confirm_seconds_count')
          ? page
          : undefined;
      });
      const moved = (page: string, previous: string, name: string) =>
        metricSum(page, name) - metricSum(previous, name);
      expect(moved(during.writeApi, before.writeApi, 'wizard_upserts_total')).toBe(5);
      expect(moved(during.writeApi, before.writeApi, 'wizard_publish_total')).toBeGreaterThanOrEqual(6);
      expect(moved(during.writeApi, before.writeApi, 'wizard_http_requests_total')).toBeGreaterThanOrEqual(5);
      expect(moved(during.gateway, before.gateway, 'wizard_gateway_open_streams')).toBe(1);
      expect(moved(during.gateway, before.gateway, 'wizard_gateway_nats_subscriptions')).toBe(1);
      expect(
        moved(during.gateway, before.gateway, 'wizard_gateway_snapshot_calls_total'),
      ).toBeGreaterThanOrEqual(1);
      expect(
        moved(during.gateway, before.gateway, 'wizard_gateway_frames_delivered_total'),
      ).toBeGreaterThanOrEqual(5);
      expect(
        moved(during.gateway, before.gateway, 'wizard_gateway_commit_to_write_seconds_count'),
      ).toBeGreaterThanOrEqual(5);
    } finally {
      metricsStream.close();
    }
    // The stream's departure shows too: the gauges return to where they were.
    await until(async () => {
      const page = (await scrape()).gateway;
      return metricSum(page, 'wizard_gateway_open_streams') ===
        metricSum(before.gateway, 'wizard_gateway_open_streams') &&
        metricSum(page, 'wizard_gateway_nats_subscriptions') ===
          metricSum(before.gateway, 'wizard_gateway_nats_subscriptions')
        ? true
        : undefined;
    });
  });
});
