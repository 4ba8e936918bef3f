import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import {
  Agent,
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { extname, join } from 'node:path';
import { isStreamPath } from '@wizard-stream/contracts';
import { redactUrl } from '@wizard-stream/telemetry';

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

/** Connection-level headers are per hop; the rest travels as is. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
]);

function forwardableHeaders(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const result: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!HOP_BY_HOP.has(name) && value !== undefined) result[name] = value;
  }
  return result;
}

const LOOPBACK_HOSTNAMES = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * The dev credentials are API keys: only for a client on this machine that addressed the edge by a
 * loopback name. The Host check keeps a page from another origin out that DNS-rebinds its own name to
 * 127.0.0.1 (it is same-origin to the browser, but its Host header still carries that name).
 */
function isLoopbackRequest(request: IncomingMessage): boolean {
  const remote = request.socket.remoteAddress ?? '';
  if (!(remote.startsWith('127.') || remote === '::1' || remote.startsWith('::ffff:127.'))) return false;
  try {
    return LOOPBACK_HOSTNAMES.has(new URL(`http://${request.headers.host ?? ''}`).hostname);
  } catch {
    return false;
  }
}

function sendJsonError(response: ServerResponse, status: number, code: string, detail: string): void {
  if (response.headersSent) {
    response.destroy();
    return;
  }
  response.writeHead(status, { 'Content-Type': 'application/json' });
  response.end(JSON.stringify({ type: 'server_error', code, detail, attr: null }));
}

/**
 * The local stand-in for the production ingress: stream paths go round robin to the gateways
 * (a gateway that refuses the connection is skipped), everything else to write-api, and `/` serves
 * the dashboard. Streams are piped through unbuffered and uncompressed, headers flushed at once.
 */
export async function startEdgeProxy(options: EdgeProxyOptions): Promise<EdgeProxy> {
  const writeApi = new URL(options.writeApiUrl);
  const gateways = options.gatewayUrls.map((url) => new URL(url));
  const apiAgent = new Agent({ keepAlive: true });
  let nextGateway = 0;

  function proxy(
    request: IncomingMessage,
    response: ServerResponse,
    target: URL,
    onRefused?: () => void,
  ): void {
    const headers = forwardableHeaders(request.headers);
    headers['x-forwarded-for'] = request.socket.remoteAddress ?? '';
    headers['x-forwarded-host'] = request.headers.host ?? '';
    headers['x-forwarded-proto'] = 'http';
    const upstream = httpRequest({
      host: target.hostname,
      port: target.port,
      method: request.method,
      path: request.url,
      headers,
      // Streams are long-lived: no pooling, so a gateway restart never leaves a dead socket in a pool.
      agent: onRefused ? false : apiAgent,
    });
    upstream.on('response', (upstreamResponse) => {
      response.writeHead(upstreamResponse.statusCode ?? 502, forwardableHeaders(upstreamResponse.headers));
      response.flushHeaders();
      upstreamResponse.pipe(response);
      // A gateway that dies mid-stream must end the client's stream too, so the client reconnects.
      upstreamResponse.on('aborted', () => response.destroy());
      upstreamResponse.on('error', () => response.destroy());
    });
    upstream.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED' && onRefused && !response.headersSent) {
        onRefused();
        return;
      }
      options.log(
        `[edge] ${request.method} ${redactUrl(request.url ?? '')} → ${target.host} failed: ${error.message}`,
      );
      sendJsonError(
        response,
        502,
        'bad_gateway',
        `upstream ${target.host} failed: ${error.code ?? error.message}`,
      );
    });
    response.on('close', () => upstream.destroy());
    // A body-less request is ended directly: a stream request may be retried on the next gateway,
    // and an already-consumed request stream could not be piped a second time.
    if (request.method === 'GET' || request.method === 'HEAD') upstream.end();
    else request.pipe(upstream);
  }

  function proxyStream(request: IncomingMessage, response: ServerResponse): void {
    request.socket.setNoDelay(true);
    const first = nextGateway++ % gateways.length;
    const tryGateway = (attempt: number) => {
      if (attempt >= gateways.length) {
        sendJsonError(response, 502, 'bad_gateway', 'no stream-gateway accepted the connection');
        return;
      }
      const target = gateways[(first + attempt) % gateways.length] as URL;
      proxy(request, response, target, () => tryGateway(attempt + 1));
    };
    tryGateway(0);
  }

  async function serveDashboard(pathname: string, response: ServerResponse): Promise<boolean> {
    const file = DASHBOARD_FILES[pathname];
    if (!file) return false;
    const path = join(options.dashboardDir, file);
    try {
      const { size } = await stat(path);
      response.writeHead(200, {
        'Content-Type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
        'Content-Length': size,
        'Cache-Control': 'no-cache',
      });
      createReadStream(path).pipe(response);
    } catch {
      sendJsonError(
        response,
        404,
        'not_found',
        `dashboard file ${file} is missing; run npm run build -w @wizard-stream/dashboard`,
      );
    }
    return true;
  }

  const server: Server = createServer((request, response) => {
    let pathname: string;
    try {
      pathname = new URL(request.url ?? '/', 'http://edge').pathname;
    } catch {
      // A request target such as `//` or `//[` is no URL: answer it, never throw in the handler.
      sendJsonError(response, 400, 'invalid_request', 'the request target is not a valid path');
      return;
    }
    if (isStreamPath(pathname)) {
      proxyStream(request, response);
      return;
    }
    if (pathname === '/dev/credentials' && request.method === 'GET') {
      if (!isLoopbackRequest(request)) {
        sendJsonError(response, 403, 'forbidden', 'the dev credentials are served to this machine only');
        return;
      }
      response.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      response.end(JSON.stringify(options.devCredentials()));
      return;
    }
    if (request.method === 'GET' || request.method === 'HEAD') {
      void serveDashboard(pathname, response).then((served) => {
        if (!served) proxy(request, response, writeApi);
      });
      return;
    }
    proxy(request, response, writeApi);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  return {
    url: `http://${options.host}:${options.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        apiAgent.destroy();
      }),
  };
}
