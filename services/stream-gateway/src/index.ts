import { buildGateway } from './app.js';
import type { StreamGatewayConfig } from './config.js';
import { drainStreams } from './drain.js';

export type { BuildGatewayOptions, Gateway } from './app.js';
export { buildGateway } from './app.js';
export type { StreamGatewayConfig } from './config.js';
export { loadStreamGatewayConfig } from './config.js';

export interface RunningStreamGateway {
  url: string;
  app: Awaited<ReturnType<typeof buildGateway>>['app'];
  state: Awaited<ReturnType<typeof buildGateway>>['state'];
  /** SIGTERM behaviour: unready, 503 for new streams, `event: end` spread over DRAIN_MS. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

export async function startStreamGateway(
  config: StreamGatewayConfig,
  options: { logStream?: NodeJS.WritableStream } = {},
): Promise<RunningStreamGateway> {
  const gateway = await buildGateway(config, options);
  const address = await gateway.app.listen({ port: config.port, host: config.host });
  let closing: Promise<void> | undefined;
  return {
    url: new URL(address).origin,
    app: gateway.app,
    state: gateway.state,
    drain: () => drainStreams(gateway.state, config.drainMs),
    close: () => {
      closing ??= gateway.close();
      return closing;
    },
  };
}
