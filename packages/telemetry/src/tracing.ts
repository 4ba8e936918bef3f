import { type Context, context, propagation, type Span, SpanStatusCode, trace } from '@opentelemetry/api';

/**
 * Tracing through the OpenTelemetry API. Without a started SDK (no OTEL_* endpoint) every call here is a
 * no-op, so services trace unconditionally.
 */

export const tracer = (name: string) => trace.getTracer(name);

/** W3C trace context of the active (or given) context, for message headers. */
export function traceHeaders(from: Context = context.active()): {
  traceparent?: string;
  tracestate?: string;
} {
  const carrier: Record<string, string> = {};
  propagation.inject(from, carrier);
  return carrier;
}

/** W3C trace context naming the given span as the parent, for the message that span sends. */
export function spanTraceHeaders(span: Span): { traceparent?: string; tracestate?: string } {
  return traceHeaders(trace.setSpan(context.active(), span));
}

/** The context a set of W3C headers describes. */
export function contextFromTraceHeaders(traceparent: string | undefined, tracestate?: string): Context {
  const carrier: Record<string, string> = {};
  if (traceparent) carrier.traceparent = traceparent;
  if (tracestate) carrier.tracestate = tracestate;
  return propagation.extract(context.active(), carrier);
}

/** Runs work in a span that ends with it and records its failure. */
export async function inSpan<T>(
  tracerName: string,
  spanName: string,
  work: (span: Span) => Promise<T>,
  attributes: Record<string, string | number | boolean> = {},
): Promise<T> {
  const span = tracer(tracerName).startSpan(spanName, { attributes });
  // Tracing off: the span records nothing, so the work needs no context of its own (hot paths).
  if (!span.isRecording()) return work(span);
  return context.with(trace.setSpan(context.active(), span), async () => {
    try {
      return await work(span);
    } catch (error) {
      span.recordException(error as Error);
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
      throw error;
    } finally {
      span.end();
    }
  });
}
