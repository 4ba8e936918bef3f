import {
  apiErrorBodySchema,
  latestSessionQuerySchema,
  listSessionsQuerySchema,
  projectIdSchema,
  SCOPES,
  sessionDtoSchema,
  sessionIdSchema,
  streamQuerySchema,
  upsertSessionBodySchema,
} from '@wizard-stream/contracts';
import { z } from 'zod';
import { createKeyBodySchema, keyIdSchema, personalApiKeySchema } from '../keys/schemas.js';

/**
 * The OpenAPI description of every route, built from the very zod schemas the handlers parse with
 * (`parseInput(listSessionsQuerySchema, …)` and so on), so the document cannot drift from the checks.
 * These schemas document only: the handlers validate after authentication, so that a bad credential is
 * a 401 before a bad query is a 400 (docs/api.md#authentication).
 */

const ErrorBody = apiErrorBodySchema.meta({
  id: 'Error',
  description: 'Every error: `attr` names the offending field (nested paths joined with `__`) or is null.',
});
const Session = sessionDtoSchema.meta({
  id: 'Session',
  description: 'The session DTO, in this field order everywhere (REST, NATS, SSE).',
});
const SessionUpsert = upsertSessionBodySchema.meta({
  id: 'SessionUpsert',
  description:
    'What the wizard CLI pushes; unknown top-level fields are ignored. Task status `cancelled` is an alias of `canceled`.',
});
const SessionPage = z
  .object({
    count: z.int().min(0),
    next: z.string().nullable(),
    previous: z.string().nullable(),
    results: z.array(Session),
  })
  .meta({ id: 'SessionPage' });
const StreamToken = z.object({ token: z.string(), expires_at: z.iso.datetime() }).meta({
  id: 'StreamToken',
  description: 'A read-only credential for one team, valid 10 min for connecting.',
});

const projectParams = z.object({ projectId: projectIdSchema.describe('The team id.') });
const sessionParams = projectParams.extend({ sessionId: sessionIdSchema });

const pollSourceHeader = z.object({
  'if-none-match': z
    .string()
    .optional()
    .describe('An ETag from an earlier answer: 304 while it still matches.'),
  'x-wizard-poll-source': z
    .string()
    .optional()
    .describe('Who polls (`sdk`, `transport`, `detector`; anything else counts as `other`), for metrics.'),
});

/** A JSON response that refers to a named component (a `.describe()` copy would inline it). */
const json = (schema: z.ZodType, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});
const error = (description: string) => json(ErrorBody, description);
const noBody = (description: string) => z.null().describe(description);

/** The statuses every authenticated call shares (docs/api.md#authentication). */
const authErrors = {
  401: error('No credential (`not_authenticated`) or an invalid one (`authentication_failed`).'),
  403: error('`permission_denied`: the credential lacks the scope, or the workflow is outside a JWT.'),
  404: error('`not_found`: a project the credential has no access to.'),
  429: error('`throttled`: per-key rate limit; see `Retry-After`.'),
  503: error('`service_unavailable`: the database (or a JWKS) is unreachable; see `Retry-After`.'),
};

type SecurityRequirement = Record<string, readonly string[]>;
const readSecurity: SecurityRequirement[] = [
  { PersonalApiKey: [SCOPES.read] },
  { StreamToken: [SCOPES.read] },
  { HostJwt: [SCOPES.read] },
];
const writeSecurity: SecurityRequirement[] = [{ PersonalApiKey: [SCOPES.write] }];

const tags = ['sessions'];

export const sessionRouteSchemas = {
  upsert: {
    tags,
    summary: 'Upsert a session',
    description:
      'Creates or replaces the session `session_id` (the idempotency key); publishes it on NATS after the commit.',
    security: writeSecurity,
    params: projectParams,
    body: SessionUpsert,
    response: {
      200: json(Session, 'Updated.'),
      201: json(Session, 'Created (`version` 1).'),
      400: error('`invalid_input`: the body fails validation; nothing is written.'),
      ...authErrors,
      413: error('`payload_too_large`: a body over 1 MiB.'),
      415: error('`unsupported_media_type`.'),
    },
  },
  list: {
    tags,
    summary: 'List sessions',
    description: 'Newest `started_at` first (ties: later `created_at`).',
    security: readSecurity,
    params: projectParams,
    querystring: listSessionsQuerySchema,
    response: {
      200: json(SessionPage, 'A page of sessions.'),
      400: error('`invalid_input`: a bad filter or bound.'),
      ...authErrors,
    },
  },
  latest: {
    tags,
    summary: 'The most recent session of a workflow',
    description:
      'The gateways’ snapshot call and the polling transport’s. Conditional: `If-None-Match` with the last ETag answers 304 without a body.',
    security: readSecurity,
    params: projectParams,
    querystring: latestSessionQuerySchema,
    headers: pollSourceHeader,
    response: {
      200: json(Session, 'The session, with an `ETag` header (weak: version, session id, staleness).'),
      204: noBody('No session matches, or `STREAM_KILLSWITCH` is on.'),
      304: noBody('Not modified: the `If-None-Match` ETag still matches.'),
      400: error('`invalid_input`: `workflow_id` missing or an id invalid.'),
      ...authErrors,
    },
  },
  retrieve: {
    tags,
    summary: 'One session',
    security: readSecurity,
    params: sessionParams,
    headers: pollSourceHeader.pick({ 'if-none-match': true }),
    response: {
      200: json(Session, 'The session, with an `ETag` header (weak: version, session id, staleness).'),
      304: noBody('Not modified: the `If-None-Match` ETag still matches.'),
      ...authErrors,
      404: error('`not_found`: no such session (or project) for this credential.'),
    },
  },
  stream: {
    tags,
    summary: 'Stream a workflow’s sessions (Server-Sent Events)',
    description: [
      'Served by **stream-gateway**; write-api itself answers 404 here. Without `skill_id` the stream covers every skill of the workflow.',
      'Frames: `retry: 3000`, then `id: <version>:<session_id>` + `data: <Session JSON>` per update, `: ping` heartbeats, and `event: end` / `data: reconnect` before the gateway closes a stream.',
      'EventSource cannot send headers: pass the credential as `?token=` (a stream token or a host-app JWT). `Last-Event-ID` resumes.',
    ].join('\n\n'),
    security: readSecurity,
    params: projectParams,
    querystring: streamQuerySchema,
    response: {
      200: {
        description: 'The stream; `Cache-Control: no-cache, no-transform`, `X-Accel-Buffering: no`.',
        content: { 'text/event-stream': { schema: z.string() } },
      },
      204: noBody('`STREAM_KILLSWITCH` is on: EventSource stops reconnecting.'),
      400: error('`invalid_input`: project id, `workflow_id` or `skill_id` invalid.'),
      ...authErrors,
      406: error('`not_acceptable`: `Accept` refuses `text/event-stream`.'),
      503: error(
        '`service_unavailable`: the gateway is draining or full (`MAX_STREAMS`), or the snapshot failed; `Retry-After` 15–45 s.',
      ),
    },
  },
  methodNotAllowed: {
    tags,
    summary: 'Not allowed',
    response: { 405: error('`method_not_allowed`; `Allow: GET, POST, HEAD, OPTIONS`.') },
  },
} as const;

export const streamTokenRouteSchema = {
  tags: ['stream tokens'],
  summary: 'Mint a stream token',
  description:
    'For a browser’s EventSource (`?token=`); needs a personal API key with `wizard_session:read`.',
  security: [{ PersonalApiKey: [SCOPES.read] }] as SecurityRequirement[],
  params: projectParams,
  response: {
    201: json(StreamToken, 'The token.'),
    ...authErrors,
    403: error('`permission_denied`: the credential is not a personal API key, or lacks the scope.'),
  },
} as const;

const PersonalApiKey = personalApiKeySchema.meta({
  id: 'PersonalApiKey',
  description: 'One of the caller’s live keys; never its value.',
});
const NewPersonalApiKey = personalApiKeySchema.extend({ value: z.string() }).meta({
  id: 'NewPersonalApiKey',
  description: 'A key just created: `value` is the key itself, shown this once (only its hash is stored).',
});
const keyTags = ['personal API keys'];
/** Managing keys needs a personal API key (no stream token, no JWT), of no project. */
const keyErrors = {
  401: authErrors[401],
  403: error('`permission_denied`: not a personal API key, or it lacks the scope.'),
  429: authErrors[429],
  503: authErrors[503],
};

export const personalApiKeyRouteSchemas = {
  list: {
    tags: keyTags,
    summary: 'List the caller’s keys',
    security: [{ PersonalApiKey: [SCOPES.keysRead] }] as SecurityRequirement[],
    response: { 200: json(z.array(PersonalApiKey), 'The caller’s live keys.'), ...keyErrors },
  },
  create: {
    tags: keyTags,
    summary: 'Create a key',
    description: 'With scopes the calling key holds itself; at most 10 live keys per user.',
    security: [{ PersonalApiKey: [SCOPES.keysWrite] }] as SecurityRequirement[],
    body: createKeyBodySchema,
    response: {
      201: json(NewPersonalApiKey, 'Created.'),
      400: error('`invalid_input`: a bad label or scope list, or the user already holds 10 keys.'),
      ...keyErrors,
      403: error(
        '`permission_denied`: not a personal API key, lacks the scope, or asks for a scope it lacks.',
      ),
    },
  },
  revoke: {
    tags: keyTags,
    summary: 'Revoke a key',
    description: 'Its stream tokens stop working and the streams opened with either end on every gateway.',
    security: [{ PersonalApiKey: [SCOPES.keysWrite] }] as SecurityRequirement[],
    params: z.object({ id: keyIdSchema }),
    response: {
      204: noBody('Revoked.'),
      ...keyErrors,
      404: error('`not_found`: no live key of the caller with this id.'),
    },
  },
} as const;

const readiness = z.object({ status: z.string(), checks: z.record(z.string(), z.boolean()) });

export const healthRouteSchemas = {
  healthz: {
    tags: ['health'],
    summary: 'Liveness',
    response: { 200: json(z.object({ status: z.literal('ok') }), 'The process runs.') },
  },
  readyz: {
    tags: ['health'],
    summary: 'Readiness (the database answers; NATS is reported, not required)',
    response: { 200: json(readiness, 'Ready.'), 503: json(readiness, 'Not ready, or shutting down.') },
  },
  metrics: {
    tags: ['health'],
    summary: 'Prometheus metrics',
    response: {
      200: { description: 'Prometheus text format.', content: { 'text/plain': { schema: z.string() } } },
    },
  },
} as const;
