import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { tracingRequested } from '../src/sdk.js';

const support = join(dirname(fileURLToPath(import.meta.url)), 'support');
const CALLER_TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const TRACEPARENT = `00-${CALLER_TRACE_ID}-b7ad6b7169203331-01`;

interface OtlpExport {
  resourceSpans: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeSpans: {
      spans: {
        traceId: string;
        name: string;
        attributes: { key: string; value: { stringValue?: string } }[];
      }[];
    }[];
  }[];
}

describe('tracingRequested', () => {
  it('is on only with an OTLP endpoint and without OTEL_SDK_DISABLED=true', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(
      true,
    );
    expect(
      tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' }),
    ).toBe(false);
    expect(
      tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'false' }),
    ).toBe(true);
  });
});

describe('startTelemetry as a preload in a real process', () => {
  let receiver: Server;
  let endpoint: string;
  const exports: { path: string; body: OtlpExport }[] = [];

  beforeAll(async () => {
    // A minimal OTLP/HTTP (JSON) receiver on loopback.
    receiver = createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on('data', (chunk: Buffer) => chunks.push(chunk));
      request.on('end', () => {
        exports.push({ path: request.url ?? '', body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
        response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    receiver.listen(0, '127.0.0.1');
    await once(receiver, 'listening');
    endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    receiver?.close();
  });

  beforeEach(() => {
    exports.length = 0;
  });

  async function runFixture(env: Record<string, string>): Promise<number | null> {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--import', join(support, 'otel-preload.ts'), join(support, 'traced-app.ts')],
      {
        env: { PATH: process.env.PATH ?? '', FIXTURE_TRACEPARENT: TRACEPARENT, ...env },
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    const [code] = (await once(child, 'exit')) as [number | null];
    return code;
  }

  it('exports the Fastify request span over OTLP/HTTP with the service name, continuing the caller trace', async () => {
    expect(await runFixture({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint })).toBe(0);

    // The fixture awaited shutdownTelemetry() before exiting, so everything is flushed by now.
    expect(exports.length).toBeGreaterThan(0);
    expect(exports.every((e) => e.path === '/v1/traces')).toBe(true);
    const resourceSpans = exports.flatMap((e) => e.body.resourceSpans);
    const serviceNames = resourceSpans.flatMap((r) =>
      r.resource.attributes.filter((a) => a.key === 'service.name').map((a) => a.value.stringValue),
    );
    expect(new Set(serviceNames)).toEqual(new Set(['telemetry-fixture']));
    const spans = resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans));
    expect(spans.length).toBeGreaterThan(0);
    // Only the /work request is traced (the /healthz probe is ignored), and it joins the caller's trace.
    expect(spans.every((span) => span.traceId === CALLER_TRACE_ID)).toBe(true);
    const paths = spans.flatMap((span) =>
      span.attributes.filter((a) => a.key === 'url.path').map((a) => a.value.stringValue),
    );
    expect(paths).toEqual(['/work?token=[REDACTED]']);
    expect(JSON.stringify(exports)).not.toContain('fixture_secret_token');
  }, 30_000);

  it('takes the service name from OTEL_SERVICE_NAME when it is set', async () => {
    expect(
      await runFixture({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SERVICE_NAME: 'renamed-fixture' }),
    ).toBe(0);
    const serviceNames = exports
      .flatMap((e) => e.body.resourceSpans)
      .flatMap((r) => r.resource.attributes.filter((a) => a.key === 'service.name'))
      .map((a) => a.value.stringValue);
    expect(serviceNames.length).toBeGreaterThan(0);
    expect(new Set(serviceNames)).toEqual(new Set(['renamed-fixture']));
  }, 30_000);

  it('sends nothing when OTEL_SDK_DISABLED=true or no endpoint is configured', async () => {
    expect(await runFixture({ OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_SDK_DISABLED: 'true' })).toBe(0);
    expect(await runFixture({})).toBe(0);
    // Each run flushed before it exited; had the SDK been on, its export would have arrived already.
    expect(exports).toEqual([]);
  }, 30_000);
});
