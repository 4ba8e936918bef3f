import { apiErrors, SESSION_COLLECTION_PATHS } from '@wizard-stream/contracts';
import { errorsPlugin, sendApiError, toApiError } from '@wizard-stream/http';
import { loggerOptions } from '@wizard-stream/telemetry';
import Fastify, { type FastifyInstance } from 'fastify';
import { databaseUnavailableError } from './db-errors.js';
import { documentOnlySchemas } from './openapi/plugin.js';
import { internalAuthPlugin } from './plugins/internal-auth.js';
import { servicesPlugin, type WriteApiServices } from './plugins/services.js';
import { sessionRoutes } from './sessions/routes.js';

const COLLECTION = SESSION_COLLECTION_PATHS[0];
/** What the gateways read after a NATS outage (resnapshot.ts) and nothing else. */
const INTERNAL_ROUTES = new Set([COLLECTION, `${COLLECTION}/latest`]);

export interface InternalListener {
  app: FastifyInstance;
  url: string;
}

/**
 * The gateways' read path on INTERNAL_PORT: the session list and latest calls, the same handlers as the
 * public ones, authorized by INTERNAL_API_TOKEN alone (plugins/internal-auth.ts). Neither the Ingress
 * nor the edge proxy routes to this port, and the NetworkPolicies admit only the gateways to it.
 */
export async function startInternalListener(
  services: WriteApiServices,
  options: { host: string; port: number; internalApiToken: string },
): Promise<InternalListener> {
  const app = Fastify({
    logger: loggerOptions('write-api-internal', services.config.logLevel),
    routerOptions: { ignoreTrailingSlash: true },
    frameworkErrors: (error, _request, reply) => {
      sendApiError(reply, toApiError(error));
    },
    requestIdHeader: 'x-request-id',
  });
  documentOnlySchemas(app);
  await app.register(servicesPlugin, { services });
  await app.register(errorsPlugin, { classify: databaseUnavailableError });
  await app.register(internalAuthPlugin, { internalApiToken: options.internalApiToken });
  app.addHook('onRequest', async (request) => {
    if (request.method !== 'GET' || !INTERNAL_ROUTES.has(request.routeOptions.url ?? '')) {
      throw apiErrors.notFound('The internal listener serves the session list and latest calls only.');
    }
  });
  await app.register(sessionRoutes, { prefix: COLLECTION });
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return { app, url: `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}` };
}
