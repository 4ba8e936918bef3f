// Preload: `node --import ./src/otel.ts src/main.ts`. Starts the OpenTelemetry SDK (only when an OTLP
// endpoint is configured through the standard OTEL_* variables) before Fastify is imported.
import { startTelemetry } from '@wizard-stream/telemetry/sdk';

startTelemetry({ serviceName: 'stream-gateway' });
