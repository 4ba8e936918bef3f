import { STREAM_TOKEN_QUERY_PARAM } from '@wizard-stream/contracts';

/**
 * Fastify logger settings shared by the services: JSON lines (pino) with request ids, and no secret in
 * any line: credentials headers are censored and the stream token is cut out of every logged URL.
 */

/** A query parameter's name as the server's query parser reads it: `+` is a space, %XX decoded once. */
function decodedName(raw: string): string {
  const spaced = raw.replaceAll('+', ' ');
  try {
    return decodeURIComponent(spaced);
  } catch {
    // The parser keeps what it cannot decode as it is.
    return spaced;
  }
}

/**
 * The URL with the value of every parameter the services would read as the stream token replaced: the
 * name is compared decoded (`?%74oken=` is the same parameter as `?token=`), case-insensitively, and
 * the value runs to the next `&` (a stray `#` is part of it for the parser, so it is cut too).
 */
export function redactUrl(url: string): string {
  const start = url.indexOf('?');
  if (start === -1) return url;
  const parameters = url
    .slice(start + 1)
    .split('&')
    .map((parameter) => {
      const equals = parameter.indexOf('=');
      if (equals === -1) return parameter;
      const name = parameter.slice(0, equals);
      return decodedName(name).toLowerCase() === STREAM_TOKEN_QUERY_PARAM ? `${name}=[REDACTED]` : parameter;
    });
  return `${url.slice(0, start + 1)}${parameters.join('&')}`;
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
