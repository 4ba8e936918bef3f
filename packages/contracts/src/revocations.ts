import { z } from 'zod';

const id = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/**
 * A revocation on REVOCATIONS_SUBJECT: a stream matches when every id the message names equals its
 * owner's. `{key_id}` ends what a key (or a stream token it minted) opened; `{user_id, team_id}` what a
 * user removed from a team opened there.
 */
export const revocationSchema = z
  .object({
    key_id: id.optional(),
    user_id: id.optional(),
    team_id: id.optional(),
    revoked_at: z.iso.datetime({ offset: true }),
  })
  .refine(
    (message) => [message.key_id, message.user_id, message.team_id].some((value) => value !== undefined),
    {
      error: 'a revocation names a key_id, user_id or team_id',
    },
  );

export type Revocation = z.infer<typeof revocationSchema>;

/** What an open stream remembers of its credential, to be matched against revocations. */
export interface StreamOwner {
  teamId: number;
  userId: number;
  keyId: number;
}

export function revocationMatches(revocation: Revocation, owner: StreamOwner): boolean {
  return (
    (revocation.key_id === undefined || revocation.key_id === owner.keyId) &&
    (revocation.user_id === undefined || revocation.user_id === owner.userId) &&
    (revocation.team_id === undefined || revocation.team_id === owner.teamId)
  );
}

export function formatRevocation(revocation: Omit<Revocation, 'revoked_at'>, revokedAt: Date): string {
  return JSON.stringify({ ...revocation, revoked_at: revokedAt.toISOString() });
}

/** The revocation in a message payload, or undefined for anything else. */
export function parseRevocation(payload: string): Revocation | undefined {
  try {
    const result = revocationSchema.safeParse(JSON.parse(payload));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}
