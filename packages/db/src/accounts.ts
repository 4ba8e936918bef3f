import { createHash, randomBytes } from 'node:crypto';
import { API_KEY_BYTES, API_KEY_PREFIX, type Scope } from '@wizard-stream/contracts';
import type { Kysely } from 'kysely';
import type { DatabaseSchema } from './schema.js';

/** Personal API keys (contracts/credentials.ts) are shown once and stored only as their SHA-256 hash. */
export function generateApiKey(): string {
  return `${API_KEY_PREFIX}${randomBytes(API_KEY_BYTES).toString('base64url')}`;
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/**
 * Teams, users and their API keys: small typed queries shared by write-api's authentication, the admin
 * CLI, the local stack's seeding and the tests.
 */

export async function createTeam(db: Kysely<DatabaseSchema>, name: string): Promise<number> {
  const { id } = await db.insertInto('teams').values({ name }).returning('id').executeTakeFirstOrThrow();
  return id;
}

export async function createUser(db: Kysely<DatabaseSchema>, email: string, firstName = ''): Promise<number> {
  const { id } = await db
    .insertInto('users')
    .values({ email, first_name: firstName })
    .returning('id')
    .executeTakeFirstOrThrow();
  return id;
}

export async function findUserByEmail(db: Kysely<DatabaseSchema>, email: string) {
  return db.selectFrom('users').selectAll().where('email', '=', email).executeTakeFirst();
}

export async function addTeamMember(
  db: Kysely<DatabaseSchema>,
  teamId: number,
  userId: number,
): Promise<void> {
  await db
    .insertInto('team_members')
    .values({ team_id: teamId, user_id: userId })
    .onConflict((oc) => oc.doNothing())
    .execute();
}

export interface CreatedApiKey {
  id: number;
  key: string;
  createdAt: Date;
}

export async function createApiKey(
  db: Kysely<DatabaseSchema>,
  userId: number,
  scopes: readonly Scope[],
  label = '',
): Promise<CreatedApiKey> {
  const key = generateApiKey();
  const { id, created_at } = await db
    .insertInto('api_keys')
    .values({ user_id: userId, label, key_hash: hashApiKey(key), scopes: [...scopes] })
    .returning(['id', 'created_at'])
    .executeTakeFirstOrThrow();
  return { id, key, createdAt: created_at };
}

/** A live (unrevoked) key, its user, and whether that user is a member of the team asked about. */
export interface ApiKeyLookup {
  keyId: number;
  userId: number;
  email: string;
  firstName: string;
  scopes: string[];
  lastUsedAt: Date | null;
  isMember: boolean;
}

/** Live (unrevoked) keys, each with its user's membership of `teamId` (`team_members.team_id` null when none). */
function liveKeysWithMembership(db: Kysely<DatabaseSchema>, teamId: number) {
  return db
    .selectFrom('api_keys')
    .leftJoin('team_members', (join) =>
      join.onRef('team_members.user_id', '=', 'api_keys.user_id').on('team_members.team_id', '=', teamId),
    )
    .where('api_keys.revoked_at', 'is', null);
}

/** The one lookup of a key by its hash, for a team: undefined when no live key has this hash. */
export async function findApiKey(
  db: Kysely<DatabaseSchema>,
  keyHash: string,
  teamId: number,
): Promise<ApiKeyLookup | undefined> {
  const row = await liveKeysWithMembership(db, teamId)
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select([
      'api_keys.id as keyId',
      'api_keys.user_id as userId',
      'api_keys.scopes',
      'api_keys.last_used_at as lastUsedAt',
      'users.email',
      'users.first_name as firstName',
      'team_members.team_id as memberTeamId',
    ])
    .where('api_keys.key_hash', '=', keyHash)
    .executeTakeFirst();
  if (!row) return undefined;
  const { memberTeamId, ...key } = row;
  return { ...key, isMember: memberTeamId !== null };
}

export async function recordApiKeyUse(db: Kysely<DatabaseSchema>, keyId: number, at: Date): Promise<void> {
  await db.updateTable('api_keys').set({ last_used_at: at }).where('id', '=', keyId).execute();
}

/** Whether a key that minted a stream token is still live and its user still a member of the team. */
export interface KeyStanding {
  userId: number;
  isMember: boolean;
}

/** The standing of a live key for a team: undefined once the key is revoked (or never existed). */
export async function findKeyStanding(
  db: Kysely<DatabaseSchema>,
  keyId: number,
  teamId: number,
): Promise<KeyStanding | undefined> {
  const row = await liveKeysWithMembership(db, teamId)
    .select(['api_keys.user_id as userId', 'team_members.team_id as memberTeamId'])
    .where('api_keys.id', '=', keyId)
    .executeTakeFirst();
  return row ? { userId: row.userId, isMember: row.memberTeamId !== null } : undefined;
}

export interface RevokedApiKey {
  id: number;
  userId: number;
  revokedAt: Date;
}

/** Revokes a live key, only the user's own when `userId` is given; undefined when there was none to revoke. */
export async function revokeApiKey(
  db: Kysely<DatabaseSchema>,
  keyId: number,
  userId?: number,
): Promise<RevokedApiKey | undefined> {
  let query = db
    .updateTable('api_keys')
    .set({ revoked_at: new Date() })
    .where('id', '=', keyId)
    .where('revoked_at', 'is', null);
  if (userId !== undefined) query = query.where('user_id', '=', userId);
  const row = await query.returning(['id', 'user_id', 'revoked_at']).executeTakeFirst();
  return row?.revoked_at ? { id: row.id, userId: row.user_id, revokedAt: row.revoked_at } : undefined;
}

/** The user's live keys, oldest first, without anything secret: what `GET /api/personal_api_keys/` lists. */
export async function listLiveApiKeys(db: Kysely<DatabaseSchema>, userId: number) {
  return db
    .selectFrom('api_keys')
    .select(['id', 'label', 'scopes', 'created_at', 'last_used_at'])
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .orderBy('id')
    .execute();
}

export async function removeTeamMember(
  db: Kysely<DatabaseSchema>,
  teamId: number,
  userId: number,
): Promise<boolean> {
  const result = await db
    .deleteFrom('team_members')
    .where('team_id', '=', teamId)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return result.numDeletedRows > 0n;
}

export async function listApiKeys(db: Kysely<DatabaseSchema>, userId?: number) {
  let query = db
    .selectFrom('api_keys')
    .innerJoin('users', 'users.id', 'api_keys.user_id')
    .select([
      'api_keys.id',
      'users.email',
      'api_keys.label',
      'api_keys.scopes',
      'api_keys.created_at',
      'api_keys.last_used_at',
      'api_keys.revoked_at',
    ])
    .orderBy('api_keys.id');
  if (userId !== undefined) query = query.where('api_keys.user_id', '=', userId);
  return query.execute();
}

export interface SeededMember {
  teamId: number;
  userId: number;
  apiKey: string;
}

/** A team with one member holding a read+write key: what tests and the local stack start from. */
export async function seedTeamWithMember(
  db: Kysely<DatabaseSchema>,
  options: { teamName: string; email: string; firstName?: string; scopes?: readonly Scope[] },
): Promise<SeededMember> {
  const teamId = await createTeam(db, options.teamName);
  const userId = await createUser(db, options.email, options.firstName ?? '');
  await addTeamMember(db, teamId, userId);
  const { key } = await createApiKey(
    db,
    userId,
    options.scopes ?? ['wizard_session:read', 'wizard_session:write'],
    'seed',
  );
  return { teamId, userId, apiKey: key };
}
