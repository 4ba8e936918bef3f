import cors from '@fastify/cors';
import { BusConnection, busOptionsOf, registerBusMetrics, sessionPayloadLimit } from '@wizard-stream/bus';
import { MAX_BODY_BYTES, SESSION_COLLECTION_PATHS } from '@wizard-stream/contracts';
import { type Database, migrateToLatest, openDatabase } from '@wizard-stream/db';
import { AuthFailureThrottle, errorsPlugin, sendApiError, toApiError } from '@wizard-stream/http';
import { loggerOptions } from '@wizard-stream/telemetry';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import { CredentialChecker } from './auth/credentials.js';
import { JwtVerifier } from './auth/jwt.js';
import { RateLimiter } from './auth/rate-limiter.js';
import { clientErrorHandler } from './client-errors.js';
import type { WriteApiConfig } from './config.js';
import { databaseUnavailableError } from './db-errors.js';
import { healthRoutes } from './health.js';
import { type InternalListener, startInternalListener } from './internal-listener.js';
import { personalApiKeyRoutes } from './keys/routes.js';
import { createWriteApiMetrics } from './metrics.js';
import { openApiPlugin } from './openapi/plugin.js';
import { authPlugin } from './plugins/auth.js';
import { servicesPlugin, type WriteApiServices } from './plugins/services.js';
import { SessionCommitter, type SessionCommitterOptions } from './sessions/commit.js';
import { SessionPublisher } from './sessions/publisher.js';
import { Relay } from './sessions/relay.js';
import { sessionRoutes } from './sessions/routes.js';
import { sessionSerializer } from './sessions/serializer.js';
import { StalenessSweeper } from './sessions/staleness.js';
import { UpsertBatcher } from './sessions/upsert-batcher.js';
import { streamTokenRoutes } from './stream-tokens/routes.js';

export interface StartOptions {
  /** An already-open database (tests share one); otherwise one is opened from the config and owned. */
  database?: Database;
  /** Test seam, see SessionCommitterOptions.afterCommit. */
  afterCommit?: SessionCommitterOptions['afterCommit'];
}

export interface RunningWriteApi {
  url: string;
  /** The gateways' read listener (INTERNAL_PORT), when configured. */
  internalUrl: string | undefined;
  app: FastifyInstance;
  relay: Relay;
  sweeper: StalenessSweeper;
  /** Graceful stop: unready, finish in-flight requests, confirm publishes, release connections. */
  close(): Promise<void>;
}

function jwtVerifier(config: WriteApiConfig): JwtVerifier | undefined {
  if (config.streamJwtSecret === undefined && config.streamJwtJwksUrl === undefined) return undefined;
  return new JwtVerifier({
    secret: config.streamJwtSecret,
    jwksUrl: config.streamJwtJwksUrl,
    issuer: config.streamJwtIssuer,
    audience: config.streamJwtAudience,
    jwksCooldownMs: config.streamJwtJwksCooldownMs,
  });
}

export async function startWriteApi(
  config: WriteApiConfig,
  options: StartOptions = {},
): Promise<RunningWriteApi> {
  const app = Fastify({
    logger: loggerOptions('write-api', config.logLevel),
    bodyLimit: MAX_BODY_BYTES,
    // The whole request must arrive within this (a trickled body is cut off with 408), checked this often.
    requestTimeout: config.requestTimeoutMs,
    http: {
      headersTimeout: config.requestTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, config.requestTimeoutMs),
    },
    clientErrorHandler,
    // A session id is up to 255 UTF-16 units, each at most 9 characters percent-encoded (3 UTF-8 bytes).
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 255 * 9 },
    // Malformed URLs are refused by the router before any handler: same error body as every other error.
    frameworkErrors: (error, _request, reply) => {
      sendApiError(reply, toApiError(error));
    },
    // One hop: the Ingress (or the edge proxy). Its X-Forwarded-For entry is the client address that
    // failed authentications are counted against; entries further left are the client's own claims.
    trustProxy: (_address: string, hop: number) => hop < 1,
    requestIdHeader: 'x-request-id',
    // Per-request lines only when debugging: at thousands of upserts a second they cost more than the upsert.
    logController: new LogController({
      disableRequestLogging: config.logLevel !== 'debug' && config.logLevel !== 'trace',
    }),
  });

  const ownsDatabase = options.database === undefined;
  const database =
    options.database ??
    (await openDatabase({
      ...config.database,
      poolSize: config.dbPoolSize,
      statementTimeoutMs: config.statementTimeoutMs,
      // A database that hangs must not hold a request longer than a slow statement would.
      connectionTimeoutMs: config.statementTimeoutMs,
      onPoolError: (error) => app.log.warn({ err: error }, 'idle database connection failed'),
    }));
  if (config.migrateOnStart) await migrateToLatest(database.db);

  const metrics = createWriteApiMetrics();
  const bus = new BusConnection({ ...busOptionsOf(config), name: 'write-api', logger: app.log });
  registerBusMetrics(bus, metrics.registry);
  const serialize = sessionSerializer(config.staleAfterMs);
  const publisher = new SessionPublisher({ db: database.db, bus, metrics, logger: app.log, serialize });
  const relay = new Relay({
    db: database.db,
    bus,
    publisher,
    metrics,
    logger: app.log,
    intervalMs: config.relayIntervalMs,
    graceMs: config.relayGraceMs,
    maxAttempts: config.relayMaxAttempts,
  });
  const sweeper = new StalenessSweeper({
    db: database.db,
    publisher,
    metrics,
    logger: app.log,
    staleAfterMs: config.staleAfterMs,
    intervalMs: config.staleSweepMs,
  });
  const rateLimiter = new RateLimiter(config.rateLimitPerMin);
  const pruneTimer = setInterval(() => rateLimiter.prune(), 60_000).unref();

  if (config.corsOrigins.length > 0) {
    await app.register(cors, { origin: config.corsOrigins, credentials: false, maxAge: 600 });
  }
  const services: WriteApiServices = {
    config,
    database,
    bus,
    commits: new SessionCommitter({
      db: database.db,
      // Half the pool for upsert statements leaves connections for reads, auth, the relay and the sweeper.
      upserts: new UpsertBatcher(database.db, {
        maxInFlight: Math.max(1, Math.floor(config.dbPoolSize / 2)),
        maxBatch: 64,
        maxQueued: config.upsertQueueLimit,
      }),
      payloadLimit: () => sessionPayloadLimit(bus),
      publisher,
      serialize,
      metrics,
      afterCommit: options.afterCommit,
    }),
    serialize,
    rateLimiter,
    metrics,
    credentials: new CredentialChecker({
      db: database.db,
      streamTokenSecret: config.streamTokenSecret,
      cacheMs: config.authCacheMs,
      cacheMax: config.authCacheMax,
      jwt: jwtVerifier(config),
    }),
    authFailures: new AuthFailureThrottle(config.authFailuresPerMin),
  };
  await app.register(servicesPlugin, { services });
  await app.register(errorsPlugin, { classify: databaseUnavailableError });
  await app.register(authPlugin);
  // Before every route: it documents the routes as they are registered.
  await app.register(openApiPlugin);
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
    metrics.httpDuration.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });
  await app.register(healthRoutes);
  for (const prefix of SESSION_COLLECTION_PATHS) await app.register(sessionRoutes, { prefix });
  await app.register(streamTokenRoutes);
  await app.register(personalApiKeyRoutes);

  if (config.streamTokenSecretGenerated) {
    app.log.warn(
      'STREAM_TOKEN_SECRET is unset: using a random one; stream tokens will not survive a restart',
    );
  }

  await app.listen({ port: config.port, host: config.host });
  let internal: InternalListener | undefined;
  if (config.internalPort !== undefined && config.internalApiToken !== undefined) {
    internal = await startInternalListener(services, {
      host: config.host,
      port: config.internalPort,
      internalApiToken: config.internalApiToken,
    });
  } else if (config.internalApiToken !== undefined) {
    app.log.warn('INTERNAL_API_TOKEN is set without INTERNAL_PORT: no listener accepts it');
  }
  relay.start();
  sweeper.start();
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;

  let closing: Promise<void> | undefined;
  return {
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    internalUrl: internal?.url,
    app,
    relay,
    sweeper,
    close: () => {
      closing ??= (async () => {
        app.accepting = false;
        clearInterval(pruneTimer);
        await Promise.all([relay.stop(), sweeper.stop()]);
        await Promise.all([app.close(), internal?.app.close()]);
        await publisher.close();
        await bus.close();
        if (ownsDatabase) await database.close();
      })();
      return closing;
    },
  };
}
