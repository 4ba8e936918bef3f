import { createHash } from 'node:crypto';
import { isStale, type SessionRecord } from '@wizard-stream/contracts';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { SessionSerializer } from './serializer.js';

/**
 * The validator of a session's representation: its version and session id (hashed, as an id may hold
 * any visible character, `"` included), plus whether it reads as stale, because `is_stale` turns true
 * with the clock before the sweeper records a new version. Weak: the creator's name and email are joined
 * from the users table and may change under the same version.
 */
export function sessionEtag(record: SessionRecord, staleAfterMs: number, now = new Date()): string {
  const id = createHash('sha256').update(record.sessionId).digest('base64url').slice(0, 16);
  const stale = isStale(record.runPhase, record.updatedAt, now, staleAfterMs) ? '.stale' : '';
  return `W/"${record.version}.${id}${stale}"`;
}

/** RFC 9110 §13.1.2: `*` or a list of entity tags, compared weakly. */
export function ifNoneMatchHits(header: string | string[] | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const value = Array.isArray(header) ? header.join(',') : header;
  if (value.trim() === '*') return true;
  const opaque = (tag: string) => tag.trim().replace(/^W\//, '');
  const wanted = opaque(etag);
  return value.split(',').some((tag) => opaque(tag) === wanted);
}

/**
 * A conditional read (docs/api.md#conditional-reads): 304 without serializing when the client's ETag
 * still matches, else the DTO. Responses depend on the credential, so shared caches must not keep them.
 */
export function sendConditionalSession(
  request: FastifyRequest,
  reply: FastifyReply,
  record: SessionRecord,
  serialize: SessionSerializer,
  staleAfterMs: number,
): 'hit' | 'not_modified' {
  const etag = sessionEtag(record, staleAfterMs);
  reply.header('etag', etag).header('cache-control', 'private, no-cache');
  if (ifNoneMatchHits(request.headers['if-none-match'], etag)) {
    reply.code(304).send();
    return 'not_modified';
  }
  reply.code(200).type('application/json; charset=utf-8').send(serialize(record));
  return 'hit';
}
