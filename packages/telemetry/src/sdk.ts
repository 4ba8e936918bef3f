import { FastifyOtelInstrumentation } from '@fastify/otel';
import { context, propagation, trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { core, NodeSDK, type NodeSDKConfiguration } from '@opentelemetry/sdk-node';
import { InMemorySpanExporter, SimpleSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_URL_PATH } from '@opentelemetry/semantic-conventions';
import { redactUrl } from './logging.js';

/**
 * The OpenTelemetry SDK set-up shared by the services. It is loaded as a preload
 * (`node --import ./src/otel.ts main.ts`) so that the Fastify instrumentation is registered before the
 * first Fastify instance is created. The SDK reads the standard OTEL_* variables itself; this module is
 * the one place outside the config loaders that looks at the environment, and only to decide whether
 * tracing is wanted at all.
 */

export interface TelemetryOptions {
  serviceName: string;
}

export interface TelemetryHandle {
  /** Flushes pending spans and stops the SDK; safe to call more than once. */
  shutdown(): Promise<void>;
}

/** Probes, scrapes and stream connections would flood traces without telling anything about an update. */
const UNTRACED_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

function pathOf(url: string): string {
  const query = url.indexOf('?');
  return query === -1 ? url : url.slice(0, query);
}

function fastifyInstrumentation(): FastifyOtelInstrumentation {
  return new FastifyOtelInstrumentation({
    registerOnInitialization: true,
    ignorePaths: ({ url }) => UNTRACED_PATHS.has(pathOf(url)),
    // The request span records the URL with its query string: cut the stream token out, as the logs do.
    requestHook: (span, request) => {
      span.setAttribute(ATTR_URL_PATH, redactUrl(request.url));
    },
  });
}

function sdkConfiguration(
  serviceName: string,
  spanProcessors: SpanProcessor[],
  instrumentation: FastifyOtelInstrumentation,
): Partial<NodeSDKConfiguration> {
  return {
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }),
    serviceName,
    spanProcessors,
    textMapPropagator: new core.W3CTraceContextPropagator(),
    instrumentations: [instrumentation],
    // Metrics are served by prom-client on /metrics, and logs go to stdout as JSON: without these empty
    // lists the SDK would start OTLP metric and log exporters from its defaults.
    metricReaders: [],
    logRecordProcessors: [],
  };
}

type Environment = Record<string, string | undefined>;

/** Tracing is on when an OTLP endpoint is configured and the SDK is not disabled. */
export function tracingRequested(env: Environment): boolean {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  const disabled = (env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase() === 'true';
  return Boolean(endpoint) && !disabled;
}

const ACTIVE_HANDLE = Symbol.for('wizard-stream.telemetry.handle');
type GlobalWithHandle = typeof globalThis & { [ACTIVE_HANDLE]?: TelemetryHandle };

/**
 * Starts the SDK with the OTLP/HTTP trace exporter when tracing is requested (see tracingRequested);
 * otherwise does nothing and every tracing helper stays a no-op. Returns the handle, or undefined when off.
 */
export function startTelemetry(
  { serviceName }: TelemetryOptions,
  env: Environment = process.env,
): TelemetryHandle | undefined {
  if (!tracingRequested(env)) return undefined;
  const existing = (globalThis as GlobalWithHandle)[ACTIVE_HANDLE];
  if (existing) return existing;
  // The standard OTEL_SERVICE_NAME wins over the built-in name (the SDK would let an explicit name override it).
  const name = env.OTEL_SERVICE_NAME?.trim() || serviceName;

  // The exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, _HEADERS and _TIMEOUT itself; the batch
  // processor built by the SDK reads OTEL_BSP_*.
  const sdk = new NodeSDK({
    ...sdkConfiguration(name, [], fastifyInstrumentation()),
    spanProcessors: undefined,
    traceExporter: new OTLPTraceExporter(),
  });
  sdk.start();

  let stopping: Promise<void> | undefined;
  const handle: TelemetryHandle = {
    shutdown: () => {
      stopping ??= sdk.shutdown().catch((error: unknown) => {
        console.error(`telemetry: flushing spans of ${name} failed: ${(error as Error).message}`);
      });
      return stopping;
    },
  };
  (globalThis as GlobalWithHandle)[ACTIVE_HANDLE] = handle;
  // A natural exit (event loop drained after a graceful shutdown) flushes the last spans. Entry points
  // that call process.exit() should await shutdownTelemetry() first.
  process.once('beforeExit', () => void handle.shutdown());
  return handle;
}

/**
 * Flushes and stops the SDK started by startTelemetry in this process (preload and entry point share it
 * through a global, as they may be bundled separately). Resolves at once when tracing is off.
 */
export async function shutdownTelemetry(): Promise<void> {
  await (globalThis as GlobalWithHandle)[ACTIVE_HANDLE]?.shutdown();
}

export interface TestTelemetry {
  /** Every finished span, in the order spans ended. */
  exporter: InMemorySpanExporter;
  /** Stops the SDK and unregisters its globals, so another test can start it again. */
  shutdown(): Promise<void>;
}

/**
 * The same SDK set-up in-process with an in-memory exporter and a synchronous span processor, for tests
 * that assert on spans. Start it before the Fastify instances under test are created.
 */
export function startTestTelemetry({ serviceName = 'test' }: Partial<TelemetryOptions> = {}): TestTelemetry {
  const exporter = new InMemorySpanExporter();
  const instrumentation = fastifyInstrumentation();
  const sdk = new NodeSDK({
    ...sdkConfiguration(serviceName, [new SimpleSpanProcessor(exporter)], instrumentation),
    autoDetectResources: false,
  });
  sdk.start();
  return {
    exporter,
    shutdown: async () => {
      instrumentation.disable();
      await sdk.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}
