import { ConfigError } from '@wizard-stream/contracts';
import { shutdownTelemetry } from '@wizard-stream/telemetry/sdk';
import { loadStreamGatewayConfig, type StreamGatewayConfig, startStreamGateway } from './index.js';

let config: StreamGatewayConfig;
try {
  config = loadStreamGatewayConfig(process.env);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  // The message names every bad variable; a stack trace would only bury it.
  console.error(error.message);
  process.exit(1);
}
const gateway = await startStreamGateway(config);

let stopping = false;
async function stop(signal: NodeJS.Signals): Promise<void> {
  if (stopping) return;
  stopping = true;
  // The drain takes DRAIN_MS; whatever hangs after it must not keep the pod past its grace period.
  setTimeout(() => {
    gateway.app.log.error({ signal }, 'shutdown overran DRAIN_MS; exiting');
    process.exit(1);
  }, config.drainMs + 1500).unref();
  gateway.app.log.info({ signal, drainMs: config.drainMs }, 'draining streams');
  await gateway.drain();
  await gateway.close();
  await shutdownTelemetry();
  process.exit(0);
}

process.once('SIGTERM', (signal) => void stop(signal));
process.once('SIGINT', (signal) => void stop(signal));
