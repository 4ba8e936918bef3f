import {
  apiErrors,
  LIST_PAGE_MAX_BYTES,
  latestSessionQuerySchema,
  listSessionsQuerySchema,
  parseInput,
  parseUpsertBody,
  SCOPES,
  serializeSessionPage,
  sessionIdSchema,
  type UpsertSessionBody,
} from '@wizard-stream/contracts';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { assertJwtWorkflow } from '../auth/jwt.js';
import { sessionRouteSchemas as schemas } from '../openapi/route-schemas.js';
import { sendConditionalSession as sendSession } from './conditional.js';
import { POLL_SOURCE_HEADER, type PollResult, pollSourceLabel } from './poll-source.js';
import { findSession, latestSession, listSessions } from './queries.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The JSON text a session push was parsed from. */
    jsonText: string | undefined;
  }
}

function sendJson(reply: FastifyReply, statusCode: number, json: string): FastifyReply {
  return reply.code(statusCode).type('application/json; charset=utf-8').send(json);
}

function pageUrl(request: FastifyRequest, offset: number, limit: number): string {
  // The host and scheme come from (forwarded) headers and may not parse as a URL: only the path and query are parsed.
  const url = new URL(request.url, 'http://localhost');
  url.searchParams.set('offset', String(offset));
  url.searchParams.set('limit', String(limit));
  return `${request.protocol}://${request.host}${url.pathname}${url.search}`;
}

/** The session collection; registered once per URL alias (docs/api.md). */
export async function sessionRoutes(app: FastifyInstance): Promise<void> {
  const { commits, serialize, metrics, config } = app.services;

  // Fastify's own JSON parsing (its errors, its prototype-poisoning refusal), keeping the text: the
  // number rule needs to see how each number was written (contracts' numbers.ts). Scoped to these routes.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.decorateRequest('jsonText', undefined);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, text, done) => {
    request.jsonText = text as string;
    parseJson(request, text as string, done);
  });

  app.post('/', { schema: schemas.upsert }, async (request, reply) => {
    const { principal, projectId } = await request.authorize(SCOPES.write);
    if (principal.kind !== 'api_key')
      throw apiErrors.permissionDenied('Only personal API keys can push sessions.');
    let body: UpsertSessionBody;
    try {
      body = parseUpsertBody(request.body, request.jsonText);
    } catch (error) {
      metrics.upserts.inc({ result: 'invalid' });
      throw error;
    }
    const { created, payload } = await commits.commit({ teamId: projectId, body }, principal);
    return sendJson(reply, created ? 201 : 200, payload);
  });

  app.get('/', { schema: schemas.list }, async (request, reply) => {
    const { principal, projectId } = await request.authorize(SCOPES.read);
    const query = parseInput(listSessionsQuerySchema, request.query);
    assertJwtWorkflow(principal, query.workflow_id);
    const { count, sessions } = await listSessions(
      app.services.database.db,
      projectId,
      { workflowId: query.workflow_id, skillId: query.skill_id },
      { offset: query.offset, limit: query.limit, maxBytes: LIST_PAGE_MAX_BYTES },
    );
    // The rows were chosen by estimated size; the exact bytes decide too, so the page stays in budget.
    const serialized: string[] = [];
    let bytes = 0;
    for (const { record } of sessions) {
      const json = serialize(record);
      bytes += Buffer.byteLength(json, 'utf8');
      if (serialized.length > 0 && bytes > LIST_PAGE_MAX_BYTES) break;
      serialized.push(json);
    }
    // A page cut short by the byte budget continues where it stopped, with the same limit.
    const nextOffset = query.offset + serialized.length;
    const page = {
      count,
      next: nextOffset < count ? pageUrl(request, nextOffset, query.limit) : null,
      previous:
        query.offset > 0 ? pageUrl(request, Math.max(0, query.offset - query.limit), query.limit) : null,
    };
    return sendJson(reply, 200, serializeSessionPage(page, serialized));
  });

  app.get('/latest', { schema: schemas.latest }, async (request, reply) => {
    const { principal, projectId } = await request.authorize(SCOPES.read);
    const countPoll = (result: PollResult) =>
      metrics.latestPolls.inc({ source: pollSourceLabel(request.headers[POLL_SOURCE_HEADER]), result });
    // PostHog's order: after authentication, before validation and the read, so the fleet's polls cost nothing.
    if (config.streamKillswitch) {
      countPoll('killswitch');
      return reply.code(204).send();
    }
    const query = parseInput(latestSessionQuerySchema, request.query);
    assertJwtWorkflow(principal, query.workflow_id);
    const latest = await latestSession(app.services.database.db, projectId, {
      workflowId: query.workflow_id,
      skillId: query.skill_id,
    });
    if (!latest) {
      countPoll('empty');
      return reply.code(204).send();
    }
    countPoll(sendSession(request, reply, latest.record, serialize, config.staleAfterMs));
    return reply;
  });

  app.get('/stream', { schema: schemas.stream }, async (request) => {
    await request.authorize(SCOPES.read);
    throw apiErrors.notFound('Streams are served by the stream gateway, not by write-api.');
  });

  app.get<{ Params: { sessionId: string } }>(
    '/:sessionId',
    { schema: schemas.retrieve },
    async (request, reply) => {
      const { principal, projectId } = await request.authorize(SCOPES.read);
      const sessionId = sessionIdSchema.safeParse(request.params.sessionId);
      if (!sessionId.success) throw apiErrors.notFound();
      const stored = await findSession(app.services.database.db, projectId, sessionId.data);
      if (!stored) throw apiErrors.notFound();
      // A JWT limited to some workflows does not see the others' sessions (auth/jwt.ts).
      // As absent as an unknown id: the 404 must not name the workflow the session belongs to.
      assertJwtWorkflow(principal, stored.record.workflowId, () => apiErrors.notFound());
      sendSession(request, reply, stored.record, serialize, config.staleAfterMs);
      return reply;
    },
  );

  for (const url of ['/', '/:sessionId']) {
    app.route({
      method: ['PUT', 'PATCH', 'DELETE'],
      url,
      schema: schemas.methodNotAllowed,
      handler: async (request) => {
        throw apiErrors.methodNotAllowed(request.method);
      },
    });
  }
}
