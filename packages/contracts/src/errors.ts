import { z } from 'zod';

/** Error bodies follow PostHog's API: `{type, code, detail, attr}`. */
export const apiErrorBodySchema = z.object({
  type: z.string(),
  code: z.string(),
  detail: z.string(),
  attr: z.string().nullable(),
});
export type ApiErrorBody = z.infer<typeof apiErrorBodySchema>;

export class ApiError extends Error {
  readonly statusCode: number;
  readonly body: ApiErrorBody;
  readonly headers: Record<string, string>;

  constructor(statusCode: number, body: ApiErrorBody, headers: Record<string, string> = {}) {
    super(`${statusCode} ${body.code}: ${body.detail}`);
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.body = body;
    this.headers = headers;
  }
}

const error = (
  statusCode: number,
  type: string,
  code: string,
  detail: string,
  attr: string | null = null,
  headers: Record<string, string> = {},
) => new ApiError(statusCode, { type, code, detail, attr }, headers);

export const apiErrors = {
  invalidInput: (detail: string, attr: string | null = null) =>
    error(400, 'validation_error', 'invalid_input', detail, attr),
  notAuthenticated: (detail = 'Authentication credentials were not provided.') =>
    error(401, 'authentication_error', 'not_authenticated', detail),
  authenticationFailed: (detail = 'Invalid credentials.') =>
    error(401, 'authentication_error', 'authentication_failed', detail),
  permissionDenied: (detail: string) => error(403, 'authentication_error', 'permission_denied', detail),
  notFound: (detail = 'Not found.') => error(404, 'invalid_request', 'not_found', detail),
  methodNotAllowed: (method: string) =>
    error(405, 'invalid_request', 'method_not_allowed', `Method "${method}" not allowed.`, null, {
      Allow: 'GET, POST, HEAD, OPTIONS',
    }),
  notAcceptable: (detail = 'This endpoint only produces text/event-stream.') =>
    error(406, 'invalid_request', 'not_acceptable', detail),
  payloadTooLarge: (limitBytes: number) =>
    error(413, 'invalid_request', 'payload_too_large', `Request body is larger than ${limitBytes} bytes.`),
  /** The session, serialized as it would be served and published, is more than the bus carries. */
  sessionTooLarge: (bytes: number, limitBytes: number) =>
    error(
      413,
      'invalid_request',
      'payload_too_large',
      `The session would serialize to ${bytes} bytes, more than the ${limitBytes} bytes a published update may carry.`,
    ),
  unsupportedMediaType: (contentType: string) =>
    error(415, 'invalid_request', 'unsupported_media_type', `Unsupported media type "${contentType}".`),
  throttled: (retryAfterSeconds: number) =>
    error(
      429,
      'throttled_error',
      'throttled',
      `Request was throttled. Expected available in ${retryAfterSeconds} seconds.`,
      null,
      { 'Retry-After': String(retryAfterSeconds) },
    ),
  unavailable: (detail: string, retryAfterSeconds: number) =>
    error(503, 'server_error', 'service_unavailable', detail, null, {
      'Retry-After': String(retryAfterSeconds),
    }),
  internal: () => error(500, 'server_error', 'error', 'A server error occurred.'),
  /** A proxy in front of the services (the local edge) could not get an answer from one of them. */
  badGateway: (detail: string) => error(502, 'server_error', 'bad_gateway', detail),
};

/** The first problem of a zod error as an API error, naming the field the way PostHog does (`a__b`). */
export function apiErrorFromZod(zodError: z.ZodError): ApiError {
  const issue = zodError.issues[0];
  if (!issue) return apiErrors.invalidInput('Invalid input.');
  return invalidField(issue.path, issue.message);
}

/** The 400 for one bad field, `attr` its path joined with `__` (null for the body as a whole). */
export function invalidField(path: readonly PropertyKey[], message: string): ApiError {
  const attr = path.length > 0 ? path.map(String).join('__') : null;
  return apiErrors.invalidInput(attr ? `${attr}: ${message}` : message, attr);
}

/** Validates input at the edge: the parsed value, or the documented 400 naming the first bad field. */
export function parseInput<Schema extends z.ZodType>(schema: Schema, input: unknown): z.infer<Schema> {
  const result = schema.safeParse(input);
  if (!result.success) throw apiErrorFromZod(result.error);
  return result.data;
}
