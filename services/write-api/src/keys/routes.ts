import { apiErrors, PERSONAL_API_KEYS_PATH, parseInput, SCOPES } from '@wizard-stream/contracts';
import { createApiKey, listLiveApiKeys, revokeApiKey } from '@wizard-stream/db';
import type { FastifyInstance } from 'fastify';
import { publishRevocation } from '../auth/revocations.js';
import { personalApiKeyRouteSchemas as schemas } from '../openapi/route-schemas.js';
import { createKeyBodySchema, keyIdSchema } from './schemas.js';

/** As PostHog: a user holds at most this many live keys. */
export const MAX_KEYS_PER_USER = 10;

interface KeyRow {
  id: number;
  label: string;
  scopes: string[];
  created_at: Date;
  last_used_at: Date | null;
}

/** A key as the API shows it: never its value, which only the create response carries. */
function keyJson(row: KeyRow) {
  return {
    id: row.id,
    label: row.label,
    scopes: row.scopes,
    created_at: row.created_at.toISOString(),
    last_used_at: row.last_used_at?.toISOString() ?? null,
  };
}

/**
 * `GET/POST /api/personal_api_keys/`, `DELETE /api/personal_api_keys/:id/`: the caller's own keys,
 * managed with a personal API key holding `personal_api_key:read` (list) or `personal_api_key:write`
 * (create, delete). A new key gets only scopes the calling key holds.
 */
export async function personalApiKeyRoutes(app: FastifyInstance): Promise<void> {
  const { database, credentials, bus } = app.services;

  app.get(PERSONAL_API_KEYS_PATH, { schema: schemas.list }, async (request) => {
    const principal = await request.authenticateKey(SCOPES.keysRead);
    return (await listLiveApiKeys(database.db, principal.userId)).map(keyJson);
  });

  app.post(PERSONAL_API_KEYS_PATH, { schema: schemas.create }, async (request, reply) => {
    const principal = await request.authenticateKey(SCOPES.keysWrite);
    const body = parseInput(createKeyBodySchema, request.body ?? {});
    const missing = body.scopes.filter((scope) => !principal.scopes.includes(scope));
    if (missing.length > 0) {
      throw apiErrors.permissionDenied(
        `This API key cannot grant scopes it does not hold: ${missing.join(', ')}.`,
      );
    }
    if ((await listLiveApiKeys(database.db, principal.userId)).length >= MAX_KEYS_PER_USER) {
      throw apiErrors.invalidInput(`A user can hold at most ${MAX_KEYS_PER_USER} personal API keys.`);
    }
    const created = await createApiKey(
      database.db,
      principal.userId,
      body.scopes as (typeof SCOPES)[keyof typeof SCOPES][],
      body.label,
    );
    return reply.code(201).send({
      id: created.id,
      label: body.label,
      value: created.key,
      scopes: body.scopes,
      created_at: created.createdAt.toISOString(),
      last_used_at: null,
    });
  });

  app.delete<{ Params: { id: string } }>(
    `${PERSONAL_API_KEYS_PATH}/:id`,
    { schema: schemas.revoke },
    async (request, reply) => {
      const principal = await request.authenticateKey(SCOPES.keysWrite);
      const id = keyIdSchema.safeParse(request.params.id);
      if (!id.success) throw apiErrors.notFound();
      // Another user's key is as absent as an unknown one.
      const revoked = await revokeApiKey(database.db, id.data, principal.userId);
      if (!revoked) throw apiErrors.notFound();
      credentials.forgetKey(revoked.id);
      if (!publishRevocation(bus, { key_id: revoked.id, user_id: revoked.userId }, revoked.revokedAt)) {
        request.log.warn(
          { keyId: revoked.id },
          'key revoked but NATS is down: its open streams end at rotation',
        );
      }
      return reply.code(204).send();
    },
  );
}
