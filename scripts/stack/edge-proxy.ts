import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import { extname, join } from 'node:path';
import { Readable } from 'node:stream';
import httpProxy, { type FastifyHttpProxyOptions } from '@fastify/http-proxy';
import { apiErrors, MAX_BODY_BYTES, SESSION_COLLECTION_PATHS } from '@wizard-stream/contracts';
import { errorsPlugin, sendApiError, toApiError } from '@wizard-stream/http';
import { redactUrl } from '@wizard-stream/telemetry';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

type ReplyOptions = NonNullable<FastifyHttpProxyOptions['replyOptions']>;
/** reply-from's hooks take requests and replies of any server kind; the edge runs HTTP/1 only. */
type ProxyRequest = Parameters<NonNullable<ReplyOptions['rewriteRequestHeaders']>>[0];
type ProxyReply = Parameters<NonNullable<ReplyOptions['onError']>>[0];

export interface EdgeProxyOptions {
  host: string;
  port: number;
  writeApiUrl: string;
  gatewayUrls: readonly string[];
  /** The built dashboard (index.html, app.js, app.css). */
  dashboardDir: string;
  /** Served at /dev/credentials so the local dashboard can pre-fill a key. Local stack only. */
  devCredentials: () => unknown;
  log: (line: string) => void;
}

export interface EdgeProxy {
  url: string;
  close(): Promise<void>;
}

const DASHBOARD_FILES: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/app.js.map': 'app.js.map',
  '/app.css': 'app.css',
};

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

/** The stream routes exactly as the gateway declares them (`services/stream-gateway/src/stream-route.ts`). */
const STREAM_ROUTES = SESSION_COLLECTION_PATHS.flatMap((collection) => [
  `${collection}/stream/`,
  `${collection}/stream`,
]);

/**
 * Per-hop request headers undici refuses to forward (it answers 500), or that belong to this hop only.
 * `expect: 100-continue` is answered by the edge itself: the body is already read when it is forwarded.
 */
const HOP_BY_HOP = [
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'expect',
];

const LOOPBACK_HOSTNAMES = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * The dev credentials are API keys: only for a client on this machine that addressed the edge by a
 * loopback name. The Host check keeps a page from another origin out that DNS-rebinds its own name to
 * 127.0.0.1 (it is same-origin to the browser, but its Host header still carries that name).
 */
function isLoopbackRequest(request: FastifyRequest): boolean {
  const remote = request.socket.remoteAddress ?? '';
  if (!(remote.startsWith('127.') || remote === '::1' || remote.startsWith('::ffff:127.'))) return false;
  try {
    return LOOPBACK_HOSTNAMES.has(new URL(`http://${request.headers.host ?? ''}`).hostname);
  } catch {
    return false;
  }
}

const invalidTarget = () => apiErrors.invalidInput('The request target is not a valid path.');

function isValidTarget(url: string): boolean {
  try {
    new URL(url, 'http://edge');
    return true;
  } catch {
    return false;
  }
}

/** A failed upstream: 502, and the client's connection closed so that nothing of this exchange is reused. */
function sendBadGateway(reply: ProxyReply, detail: string): void {
  if (reply.sent || reply.raw.headersSent) {
    reply.raw.destroy();
    return;
  }
  const error = apiErrors.badGateway(detail);
  reply
    .code(error.statusCode)
    .headers({ ...error.headers, connection: 'close' })
    .type('application/json')
    .send(error.body);
}

function upstreamFailure(error: Error): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  return cause?.code ?? cause?.message ?? (error as { code?: string }).code ?? error.message;
}

function isRefused(error: Error): boolean {
  return upstreamFailure(error) === 'ECONNREFUSED';
}

/**
 * The local stand-in for the production ingress, on @fastify/http-proxy (undici). It routes only what
 * the ingress does: `/api/**` to write-api, the stream paths round robin to the gateways (a gateway that
 * refuses the connection is skipped), the dashboard's files and the dev credentials; everything else,
 * `/metrics`, `/readyz` and `/healthz` included, is a 404 here. Streams pass through unbuffered and
 * uncompressed, their headers flushed at once.
 *
 * The body limit is enforced here, before anything is forwarded: an upstream that answers 413 and closes
 * without reading the body resets the connection, which destroys that 413 before any proxy reads it.
 */
export async function startEdgeProxy(options: EdgeProxyOptions): Promise<EdgeProxy> {
  const app = Fastify({
    logger: false,
    bodyLimit: MAX_BODY_BYTES,
    // The services log under the edge's request id (ingress-nginx sets X-Request-Id the same way).
    requestIdHeader: 'x-request-id',
    genReqId: () => randomUUID(),
    // Streams stay open for as long as the client reads: close() must not wait for them.
    forceCloseConnections: true,
    frameworkErrors: (error, _request, reply) => {
      sendApiError(reply, error.code === 'FST_ERR_BAD_URL' ? invalidTarget() : toApiError(error));
    },
  });
  await app.register(errorsPlugin);

  app.addHook('onRequest', async (request, reply) => {
    // A request target such as `//` or `//[` is no URL: answered, never passed on.
    if (!isValidTarget(request.url)) {
      return sendApiError(reply, invalidTarget());
    }
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > MAX_BODY_BYTES) return sendApiError(reply, apiErrors.payloadTooLarge(MAX_BODY_BYTES));
    return undefined;
  });

  // Bodies are read whole (at most MAX_BODY_BYTES: a chunked body past it is a 413 from Fastify's limit),
  // then forwarded byte for byte as a stream, so reply-from neither re-encodes nor streams an unbounded body.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => {
    done(null, Readable.from([body as Buffer]));
  });

  const forwardedHeaders = (request: ProxyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders => {
    const result: IncomingHttpHeaders = { ...headers };
    for (const name of HOP_BY_HOP) delete result[name];
    result['x-forwarded-for'] = request.socket.remoteAddress ?? '';
    result['x-forwarded-host'] = request.headers.host ?? '';
    result['x-forwarded-proto'] = 'http';
    result['x-request-id'] = request.id;
    return result;
  };

  const logFailure = (request: ProxyRequest, target: string, error: Error) =>
    options.log(
      `[edge] ${request.method} ${redactUrl(request.url)} → ${new URL(target).host} failed: ${upstreamFailure(error)}`,
    );

  await app.register(streamProxy, { ...options, forwardedHeaders, logFailure });
  await app.register(httpProxy, {
    upstream: options.writeApiUrl,
    prefix: '/api',
    rewritePrefix: '/api',
    proxyPayloads: false,
    replyOptions: {
      rewriteRequestHeaders: forwardedHeaders,
      onError: (reply, { error }) => {
        logFailure(reply.request, options.writeApiUrl, error);
        sendBadGateway(
          reply,
          `upstream ${new URL(options.writeApiUrl).host} failed: ${upstreamFailure(error)}`,
        );
      },
    },
  });

  for (const [path, file] of Object.entries(DASHBOARD_FILES)) {
    app.get(path, (_request, reply) => serveDashboardFile(reply, options.dashboardDir, file));
  }

  app.get('/dev/credentials', (request, reply) => {
    if (!isLoopbackRequest(request)) {
      return sendApiError(
        reply,
        apiErrors.permissionDenied('the dev credentials are served to this machine only'),
      );
    }
    return reply.header('cache-control', 'no-store').send(options.devCredentials());
  });

  await app.listen({ host: options.host, port: options.port });
  return {
    url: `http://${options.host}:${options.port}`,
    close: () => app.close(),
  };
}

interface StreamProxyOptions extends EdgeProxyOptions {
  forwardedHeaders: (request: ProxyRequest, headers: IncomingHttpHeaders) => IncomingHttpHeaders;
  logFailure: (request: ProxyRequest, target: string, error: Error) => void;
}

/** The stream paths, round robin over the gateways; a refused connection moves on to the next gateway. */
async function streamProxy(app: FastifyInstance, options: StreamProxyOptions): Promise<void> {
  const gateways = [...options.gatewayUrls];
  let nextGateway = 0;

  const forward = (
    request: ProxyRequest,
    reply: ProxyReply,
    dest: string,
    replyOptions: ReplyOptions,
    first: number,
    attempt: number,
  ): void => {
    if (attempt >= gateways.length) {
      sendBadGateway(reply, 'no stream-gateway accepted the connection');
      return;
    }
    const gateway = gateways[(first + attempt) % gateways.length] as string;
    reply.from(dest, {
      ...replyOptions,
      getUpstream: () => gateway,
      rewriteRequestHeaders: options.forwardedHeaders,
      // reply-from would send the headers with the first byte of the body: an SSE client must see
      // them at once, before the first frame (which may be the first heartbeat, seconds later).
      onResponse: (_request, streamReply, response) => {
        streamReply.send(response.stream);
        const raw = streamReply.raw;
        if ('flushHeaders' in raw) raw.flushHeaders();
      },
      onError: (errorReply, { error }) => {
        if (isRefused(error) && !errorReply.sent) {
          forward(request, errorReply, dest, replyOptions, first, attempt + 1);
          return;
        }
        options.logFailure(request, gateway, error);
        sendBadGateway(errorReply, `upstream ${new URL(gateway).host} failed: ${upstreamFailure(error)}`);
      },
    });
  };

  const proxyOptions: FastifyHttpProxyOptions = {
    upstream: '',
    routes: STREAM_ROUTES,
    proxyPayloads: false,
    // A stream is quiet between heartbeats for as long as HEARTBEAT_MS says: no body timeout.
    undici: { bodyTimeout: 0, headersTimeout: 30_000 },
    replyOptions: { getUpstream: () => gateways[0] as string },
    handler: (request, reply, dest, replyOptions) => {
      request.raw.socket.setNoDelay(true);
      forward(request, reply, dest, replyOptions, nextGateway++ % gateways.length, 0);
    },
  };
  await app.register(httpProxy, proxyOptions);
}

async function serveDashboardFile(
  reply: FastifyReply,
  dashboardDir: string,
  file: string,
): Promise<FastifyReply> {
  const path = join(dashboardDir, file);
  try {
    const { size } = await stat(path);
    return reply
      .type(CONTENT_TYPES[extname(file)] ?? 'application/octet-stream')
      .header('content-length', size)
      .header('cache-control', 'no-cache')
      .send(createReadStream(path));
  } catch {
    return sendApiError(
      reply,
      apiErrors.notFound(`dashboard file ${file} is missing; run npm run build -w @wizard-stream/dashboard`),
    );
  }
}
