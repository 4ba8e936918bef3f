import { STREAM_TOKEN_QUERY_PARAM } from '@wizard-stream/contracts';

/**
 * Fastify logger settings shared by the services: JSON lines (pino) with request ids, and no secret in
 * any line: credentials headers are censored and the stream token is cut out of every logged URL.
 */

const TOKEN_IN_QUERY = new RegExp(`([?&]${STREAM_TOKEN_QUERY_PARAM}=)[^&#]*`, 'gi');

export function redactUrl(url: string): string {
  return url.replace(TOKEN_IN_QUERY, '$1[REDACTED]');
}

interface LoggedRequest {
  method: string;
  url: string;
  id?: string;
  ip?: string;
}

export function loggerOptions(service: string, level: string) {
  return {
    level,
    base: { service },
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers.cookie',
        'headers.authorization',
        'authorization',
        'token',
        'apiKey',
        'secret',
      ],
      censor: '[REDACTED]',
    },
    serializers: {
      req: (request: LoggedRequest) => ({
        id: request.id,
        method: request.method,
        url: redactUrl(request.url),
        remoteAddress: request.ip,
      }),
    },
  };
}
