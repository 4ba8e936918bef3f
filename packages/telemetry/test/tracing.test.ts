import type { AddressInfo } from 'node:net';
import { context, trace } from '@opentelemetry/api';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestTelemetry, type TestTelemetry } from '../src/sdk.js';
import { contextFromTraceHeaders, inSpan, traceHeaders, tracer } from '../src/tracing.js';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

describe('trace propagation with the test SDK', () => {
  let telemetry: TestTelemetry;
  let app: FastifyInstance;
  let baseUrl: string;

  beforeAll(async () => {
    telemetry = startTestTelemetry({ serviceName: 'telemetry-test' });
    // Created after the SDK started, as a service is under its preload.
    app = Fastify();
    app.get('/api/projects/:projectId/work/', async () => ({
      headers: traceHeaders(),
    }));
    app.get('/healthz', async () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    baseUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await app?.close();
    await telemetry?.shutdown();
  });

  beforeEach(() => telemetry.exporter.reset());

  it('round-trips the trace id through traceHeaders and contextFromTraceHeaders', async () => {
    const { publisherTraceId, publisherSpanId, headers } = await inSpan('test', 'publish', async (span) => ({
      publisherTraceId: span.spanContext().traceId,
      publisherSpanId: span.spanContext().spanId,
      headers: traceHeaders(),
    }));
    expect(headers.traceparent).toMatch(TRACEPARENT);
    expect(headers.traceparent).toContain(publisherTraceId);

    // The receiving side: a span started in the extracted context continues the same trace.
    const received = contextFromTraceHeaders(headers.traceparent, headers.tracestate);
    const deliver = tracer('test').startSpan('deliver', {}, received);
    deliver.end();

    const spans = telemetry.exporter.getFinishedSpans();
    const deliverSpan = spans.find((span) => span.name === 'deliver');
    expect(deliverSpan?.spanContext().traceId).toBe(publisherTraceId);
    expect(deliverSpan?.parentSpanContext?.spanId).toBe(publisherSpanId);
    expect(spans.map((span) => span.name).sort()).toEqual(['deliver', 'publish']);
  });

  it('yields no trace context outside a span and an invalid context from absent headers', () => {
    expect(traceHeaders(context.active())).toEqual({});
    expect(trace.getSpanContext(contextFromTraceHeaders(undefined))).toBeUndefined();
  });

  it('continues an incoming traceparent in the Fastify request span over real HTTP', async () => {
    const callerTraceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpanId = '00f067aa0ba902b7';
    const response = await fetch(`${baseUrl}/api/projects/1/work/?token=tok_secret_abc&x=1`, {
      headers: { traceparent: `00-${callerTraceId}-${callerSpanId}-01` },
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { headers: { traceparent?: string } };
    // Inside the handler the active context is the request span of the caller's trace.
    expect(body.headers.traceparent).toMatch(TRACEPARENT);
    expect(body.headers.traceparent?.split('-')[1]).toBe(callerTraceId);

    // Request spans end in onSend, before the response is written, so they are all exported by now.
    const spans = telemetry.exporter.getFinishedSpans();
    expect(spans.length).toBeGreaterThan(0);
    expect(spans.every((span) => span.spanContext().traceId === callerTraceId)).toBe(true);
    const root = spans.find((span) => span.parentSpanContext?.spanId === callerSpanId);
    expect(root).toBeDefined();
    expect(root?.resource.attributes['service.name']).toBe('telemetry-test');
    // The stream token in the query is cut out of the recorded URL, as it is in the logs.
    expect(root?.attributes['url.path']).toBe('/api/projects/1/work/?token=[REDACTED]&x=1');
    expect(JSON.stringify(spans.map((span) => span.attributes))).not.toContain('tok_secret_abc');
  });

  it('does not trace health probes', async () => {
    const response = await fetch(`${baseUrl}/healthz`, {
      headers: { traceparent: '00-11111111111111111111111111111111-2222222222222222-01' },
    });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    // @fastify/otel ends a request span in onSend, before the response bytes leave: a traced probe
    // would already be in the exporter here.
    expect(
      telemetry.exporter
        .getFinishedSpans()
        .filter((span) => span.spanContext().traceId === '11111111111111111111111111111111'),
    ).toEqual([]);
  });
});
