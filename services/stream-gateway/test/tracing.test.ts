import { startTestTelemetry, type TestTelemetry } from '@wizard-stream/telemetry/sdk';
import { until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { openStream, type SseStream } from './support/sse-client.js';
import { syntheticSession, TestStack } from './support/stack.js';

describe('fan-out tracing', () => {
  let telemetry: TestTelemetry;
  let stack: TestStack;
  let gateway: RunningStreamGateway;
  let stream: SseStream | undefined;

  beforeAll(async () => {
    telemetry = startTestTelemetry({ serviceName: 'stream-gateway-test' });
    stack = await TestStack.start('postgres');
    gateway = await stack.startGateway();
  }, 60_000);

  afterAll(async () => {
    stream?.close();
    await stack?.close();
    await telemetry?.shutdown();
  }, 30_000);

  it('records one `wizard.fanout` span per message, child of the publisher trace in its traceparent', async () => {
    const team = stack.teams[0];
    stream = await openStream(stack.streamUrl(gateway.url, team.teamId, 'wf-trace', 's'), {
      authorization: `Bearer ${team.apiKey}`,
    });
    expect(stream.status).toBe(200);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentSpanId = '00f067aa0ba902b7';
    const payload = syntheticSession(team.teamId, 'wf-trace', 's', 'traced', 1);
    await stack.publishRaw(
      team.teamId,
      'wf-trace',
      's',
      'traced',
      1,
      payload,
      `00-${traceId}-${parentSpanId}-01`,
    );
    const open = stream;
    await open.waitFor(() => open.latestVersion('traced') === 1, { what: 'the traced frame' });
    const fanout = await until(() =>
      telemetry.exporter.getFinishedSpans().find((span) => span.name === 'wizard.fanout'),
    );
    expect(fanout.spanContext().traceId).toBe(traceId);
    const parent = (fanout as unknown as { parentSpanContext?: { spanId: string }; parentSpanId?: string })
      .parentSpanContext?.spanId;
    expect(parent ?? (fanout as unknown as { parentSpanId?: string }).parentSpanId).toBe(parentSpanId);
    expect(
      telemetry.exporter.getFinishedSpans().filter((span) => span.name === 'wizard.fanout'),
    ).toHaveLength(1);
  });
});
