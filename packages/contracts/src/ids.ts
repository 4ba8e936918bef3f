import { z } from 'zod';

/**
 * workflow_id and skill_id become NATS subject tokens, so they are restricted to characters that are
 * safe there once `.` is encoded (see subjects.ts). `%` is excluded so that decoding is exact.
 */
export const ROUTING_ID_PATTERN = /^[A-Za-z0-9_.-]{1,255}$/;

/** No whitespace, control characters or lone surrogates (PostgreSQL cannot store the latter). */
export const SESSION_ID_PATTERN = /^[^\s\p{Cc}\p{Cs}]{1,255}$/u;

function requiredString(field: string) {
  return (issue: { input: unknown }) =>
    issue.input === undefined ? 'This field is required.' : `${field} must be a string.`;
}

export const workflowIdSchema = z
  .string({ error: requiredString('workflow_id') })
  .regex(ROUTING_ID_PATTERN, { error: 'workflow_id must match ^[A-Za-z0-9_.-]{1,255}$.' });

export const skillIdSchema = z
  .string({ error: requiredString('skill_id') })
  .regex(ROUTING_ID_PATTERN, { error: 'skill_id must match ^[A-Za-z0-9_.-]{1,255}$.' });

/**
 * Ids no URL can name: `latest` and `stream` are routes of their own under the collection, and `.` and
 * `..` are dot segments that every URL parser removes (also when written `%2E`). A session stored under
 * one could never be retrieved, so they are refused.
 */
export const RESERVED_SESSION_IDS: readonly string[] = ['latest', 'stream', '.', '..'];

export const sessionIdSchema = z
  .string({ error: requiredString('session_id') })
  .regex(SESSION_ID_PATTERN, {
    error: 'session_id must be 1-255 characters without whitespace or control characters.',
  })
  .refine((id) => !RESERVED_SESSION_IDS.includes(id), {
    error: (issue) =>
      `session_id ${JSON.stringify(issue.input)} is reserved: a URL cannot name it (…/latest/, …/stream/ are routes; . and .. are dot segments).`,
  });

/** A project id in a URL is a team id: a positive integer that fits PostgreSQL's bigint. */
export const projectIdSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,15}$/, { error: 'project id must be a positive integer.' })
  .transform(Number)
  .refine(Number.isSafeInteger, { error: 'project id is too large.' });

export function isRoutingId(value: string): boolean {
  return ROUTING_ID_PATTERN.test(value);
}
