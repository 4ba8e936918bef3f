import type { SessionRecord, UpsertSessionBody } from '@wizard-stream/contracts';
import { type DatabaseSchema, QueryTemplate, slot, type WizardSessionRow } from '@wizard-stream/db';
import { type Kysely, type SelectQueryBuilder, sql } from 'kysely';

/** Small typed queries over wizard_sessions; every one is scoped to a team. */

type Db = Kysely<DatabaseSchema>;

/** A stored row plus what the DTO needs of its creator; `id` is the row's uuid. */
export interface StoredSession {
  id: string;
  record: SessionRecord;
  /** When this version was committed (an upsert or a stale transition). */
  committedAt: Date;
}

interface SessionRowWithCreator extends WizardSessionRow {
  creator_email: string | null;
  creator_first_name: string | null;
}

/** The DTO's fields of a stored row, with its creator as the caller knows it. */
function sessionRecord(row: WizardSessionRow, createdBy: SessionRecord['createdBy']): SessionRecord {
  return {
    teamId: row.team_id,
    sessionId: row.session_id,
    workflowId: row.workflow_id,
    skillId: row.skill_id,
    startedAt: row.started_at,
    runPhase: row.run_phase,
    tasks: row.tasks,
    eventPlan: row.event_plan,
    error: row.error,
    pendingInput: row.pending_input,
    handoffText: row.handoff_text,
    createdBy,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    version: row.version,
  };
}

/** A committed row as every publish and read sees it: the upsert's, the relay's and the sweeper's alike. */
export function storedSession(row: WizardSessionRow, createdBy: SessionRecord['createdBy']): StoredSession {
  return { id: row.id, committedAt: row.committed_at, record: sessionRecord(row, createdBy) };
}

function toStoredSession(row: SessionRowWithCreator): StoredSession {
  return storedSession(
    row,
    row.created_by !== null && row.creator_email !== null
      ? { id: row.created_by, first_name: row.creator_first_name ?? '', email: row.creator_email }
      : null,
  );
}

function selectWithCreator(db: Db) {
  return db
    .selectFrom('wizard_sessions')
    .leftJoin('users', 'users.id', 'wizard_sessions.created_by')
    .selectAll('wizard_sessions')
    .select(['users.email as creator_email', 'users.first_name as creator_first_name']);
}

const jsonOrNull = (value: unknown) => (value == null ? null : JSON.stringify(value));

/** One validated push: whose session it is, and what was sent. */
export interface SessionPush {
  teamId: number;
  userId: number;
  body: UpsertSessionBody;
}

/**
 * A completed push without `event_plan` keeps the stored plan; every other push replaces it. Pushes of
 * the two kinds run in separate statements, since the column's update expression differs.
 */
export function keepsStoredEventPlan(body: UpsertSessionBody): boolean {
  return body.event_plan === undefined && body.run_phase === 'completed';
}

/** The values of one push's row that change from push to push. */
function pushRow({ teamId, userId, body }: SessionPush) {
  return {
    team_id: teamId,
    session_id: body.session_id,
    workflow_id: body.workflow_id,
    skill_id: body.skill_id,
    started_at: body.started_at,
    run_phase: body.run_phase,
    tasks: JSON.stringify(body.tasks),
    event_plan: jsonOrNull(body.event_plan),
    error: jsonOrNull(body.error),
    pending_input: jsonOrNull(body.pending_input),
    handoff_text: body.handoff_text ?? null,
    created_by: userId,
  };
}

type PushRow = ReturnType<typeof pushRow>;

const PUSH_COLUMNS = [
  'team_id',
  'session_id',
  'workflow_id',
  'skill_id',
  'started_at',
  'run_phase',
  'tasks',
  'event_plan',
  'error',
  'pending_input',
  'handoff_text',
  'created_by',
] as const satisfies readonly (keyof PushRow)[];

/**
 * Insert each session, or replace the pushed fields of the caller's own session and bump its version.
 * Concurrent first pushes of one session_id meet in the unique constraint and become updates, each with
 * its own version.
 */
function upsertStatement(db: Db, rows: PushRow[], keepStoredEventPlan: boolean) {
  return db
    .insertInto('wizard_sessions')
    .values(
      rows.map((row) => ({
        ...row,
        updated_at: sql<Date>`now()`,
        committed_at: sql<Date>`now()`,
        version: 1,
      })),
    )
    .onConflict((conflict) =>
      conflict
        .columns(['team_id', 'session_id'])
        .doUpdateSet((eb) => ({
          workflow_id: eb.ref('excluded.workflow_id'),
          skill_id: eb.ref('excluded.skill_id'),
          started_at: eb.ref('excluded.started_at'),
          run_phase: eb.ref('excluded.run_phase'),
          tasks: eb.ref('excluded.tasks'),
          event_plan: keepStoredEventPlan
            ? eb.ref('wizard_sessions.event_plan')
            : eb.ref('excluded.event_plan'),
          error: eb.ref('excluded.error'),
          pending_input: eb.ref('excluded.pending_input'),
          // A push without a handoff report (null or "") keeps the one already stored.
          handoff_text: eb.fn.coalesce(
            eb.fn<string | null>('nullif', [eb.ref('excluded.handoff_text'), eb.val('')]),
            eb.ref('wizard_sessions.handoff_text'),
          ),
          updated_at: sql<Date>`now()`,
          committed_at: sql<Date>`now()`,
          version: eb('wizard_sessions.version', '+', 1),
          stale_marked_at: null,
          // A new version gets a fresh start at the relay, also when the previous one was set aside.
          publish_attempts: sql<number>`0`,
          next_publish_at: null,
          dead_lettered_at: null,
          last_publish_error: null,
        }))
        // Only the creator may update a session (created_by never changes).
        .whereRef('wizard_sessions.created_by', '=', 'excluded.created_by'),
    )
    .returningAll();
}

/** The upsert compiled once per row count and event-plan rule: the hot path only fills in values. */
const upsertTemplates = new WeakMap<Db, Map<string, QueryTemplate>>();

function upsertTemplate(db: Db, rowCount: number, keepStoredEventPlan: boolean): QueryTemplate {
  let templates = upsertTemplates.get(db);
  if (!templates) {
    templates = new Map();
    upsertTemplates.set(db, templates);
  }
  const shape = `${rowCount}:${keepStoredEventPlan}`;
  let template = templates.get(shape);
  if (!template) {
    const slots = Array.from(
      { length: rowCount },
      (_, row) => Object.fromEntries(PUSH_COLUMNS.map((column) => [column, slot(row, column)])) as PushRow,
    );
    template = QueryTemplate.compile(upsertStatement(db, slots, keepStoredEventPlan));
    templates.set(shape, template);
  }
  return template;
}

/**
 * One statement for every push, so that the commit is the statement's. Returns the committed rows; a
 * push whose session belongs to another user has none (nothing written for it). The pushes must name
 * distinct sessions and agree on keepsStoredEventPlan.
 */
export async function upsertSessions(db: Db, pushes: SessionPush[]): Promise<WizardSessionRow[]> {
  const keepStoredEventPlan = keepsStoredEventPlan((pushes[0] as SessionPush).body);
  const rows = pushes.map(pushRow);
  const query = upsertTemplate(db, rows.length, keepStoredEventPlan).bind<WizardSessionRow>(
    (row, column) => (rows[row] as PushRow)[column as keyof PushRow],
  );
  return (await db.executeQuery(query)).rows;
}

export async function findSession(
  db: Db,
  teamId: number,
  sessionId: string,
): Promise<StoredSession | undefined> {
  const row = await selectWithCreator(db)
    .where('wizard_sessions.team_id', '=', teamId)
    .where('wizard_sessions.session_id', '=', sessionId)
    .executeTakeFirst();
  return row && toStoredSession(row);
}

interface SessionFilter {
  workflowId?: string | undefined;
  skillId?: string | undefined;
}

function filtered<O>(
  query: SelectQueryBuilder<
    DatabaseSchema & { users: DatabaseSchema['users'] },
    'wizard_sessions' | 'users',
    O
  >,
  teamId: number,
  { workflowId, skillId }: SessionFilter,
) {
  let scoped = query.where('wizard_sessions.team_id', '=', teamId);
  if (workflowId !== undefined) scoped = scoped.where('wizard_sessions.workflow_id', '=', workflowId);
  if (skillId !== undefined) scoped = scoped.where('wizard_sessions.skill_id', '=', skillId);
  return scoped;
}

/**
 * An upper bound of a row's DTO bytes, computed by the database without shipping the row: jsonb's text
 * has more spaces than JSON.stringify, and 1 KiB covers the fixed fields.
 */
const estimatedDtoBytes = sql<number>`1024
  + octet_length(wizard_sessions.tasks::text)
  + coalesce(octet_length(wizard_sessions.event_plan::text), 4)
  + coalesce(octet_length(wizard_sessions.error::text), 4)
  + coalesce(octet_length(wizard_sessions.pending_input::text), 4)
  + coalesce(octet_length(to_json(wizard_sessions.handoff_text)::text), 4)
  + 3 * octet_length(wizard_sessions.session_id)`;

/**
 * A page of the list, newest started_at first: at most `limit` sessions and, past the first, no more
 * than fit `maxBytes` by their estimated size, so neither the rows fetched nor the response grow with
 * what the rows hold. The sizes are read first; only the rows that fit are fetched.
 */
export async function listSessions(
  db: Db,
  teamId: number,
  filter: SessionFilter,
  page: { offset: number; limit: number; maxBytes: number },
): Promise<{ count: number; sessions: StoredSession[] }> {
  const [sizes, total] = await Promise.all([
    filtered(
      db
        .selectFrom('wizard_sessions')
        .leftJoin('users', 'users.id', 'wizard_sessions.created_by')
        .select(['wizard_sessions.id', estimatedDtoBytes.as('bytes')]),
      teamId,
      filter,
    )
      .orderBy('wizard_sessions.started_at', 'desc')
      .orderBy('wizard_sessions.created_at', 'desc')
      .offset(page.offset)
      .limit(page.limit)
      .execute(),
    filtered(
      db
        .selectFrom('wizard_sessions')
        .leftJoin('users', 'users.id', 'wizard_sessions.created_by')
        .select((eb) => eb.fn.countAll<number>().as('count')),
      teamId,
      filter,
    ).executeTakeFirstOrThrow(),
  ]);
  const ids: string[] = [];
  let bytes = 0;
  for (const row of sizes) {
    bytes += Number(row.bytes);
    if (ids.length > 0 && bytes > page.maxBytes) break;
    ids.push(row.id);
  }
  const rows =
    ids.length === 0
      ? []
      : await filtered(selectWithCreator(db), teamId, filter)
          .where('wizard_sessions.id', 'in', ids)
          .orderBy('wizard_sessions.started_at', 'desc')
          .orderBy('wizard_sessions.created_at', 'desc')
          .execute();
  return { count: Number(total.count), sessions: rows.map(toStoredSession) };
}

/** The most recent session of a workflow (and skill); ties on started_at go to the later created. */
export async function latestSession(
  db: Db,
  teamId: number,
  filter: SessionFilter,
): Promise<StoredSession | undefined> {
  const row = await filtered(selectWithCreator(db), teamId, filter)
    .orderBy('wizard_sessions.started_at', 'desc')
    .orderBy('wizard_sessions.created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
  return row && toStoredSession(row);
}

/**
 * Committed versions that no publish has been confirmed for, older than the grace period, leaving out
 * rows set aside (dead-lettered) and rows still in their backoff after a failed publish.
 */
export async function unpublishedSessions(db: Db, graceMs: number, limit: number): Promise<StoredSession[]> {
  const rows = await selectWithCreator(db)
    .where(sql.ref('wizard_sessions.published_version'), '<', sql.ref('wizard_sessions.version'))
    .where('wizard_sessions.dead_lettered_at', 'is', null)
    .where((eb) =>
      eb.or([
        eb('wizard_sessions.next_publish_at', 'is', null),
        eb('wizard_sessions.next_publish_at', '<=', sql<Date>`now()`),
      ]),
    )
    .where('wizard_sessions.committed_at', '<', sql<Date>`now() - make_interval(secs => ${graceMs / 1000})`)
    .orderBy('wizard_sessions.committed_at')
    .limit(limit)
    .execute();
  return rows.map(toStoredSession);
}

/**
 * The current versions of these rows, dead letters apart: what the relay publishes again when a NATS
 * node that confirmed them may have died before passing them on.
 */
export async function sessionsByRowIds(db: Db, ids: readonly string[]): Promise<StoredSession[]> {
  if (ids.length === 0) return [];
  const rows = await selectWithCreator(db)
    .where('wizard_sessions.id', 'in', ids)
    .where('wizard_sessions.dead_lettered_at', 'is', null)
    .execute();
  return rows.map(toStoredSession);
}

/** What the relay still owes (dead letters apart, they have their own count and alert). */
export async function publishBacklog(
  db: Db,
): Promise<{ count: number; oldest: Date | null; deadLettered: number }> {
  const [owed, dead] = await Promise.all([
    db
      .selectFrom('wizard_sessions')
      .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.min('committed_at').as('oldest')])
      .where(sql.ref('published_version'), '<', sql.ref('version'))
      .where('dead_lettered_at', 'is', null)
      .executeTakeFirstOrThrow(),
    db
      .selectFrom('wizard_sessions')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('dead_lettered_at', 'is not', null)
      .executeTakeFirstOrThrow(),
  ]);
  return { count: Number(owed.count), oldest: owed.oldest as Date | null, deadLettered: Number(dead.count) };
}

/** One version the relay could not publish, and why. */
export interface PublishFailure {
  id: string;
  version: number;
  error: string;
}

/** A row that has just been set aside. */
export interface DeadLetter {
  teamId: number;
  sessionId: string;
  version: number;
  attempts: number;
  error: string | null;
  deadLetteredAt: Date | null;
}

type DeadLetterRow = Pick<
  WizardSessionRow,
  'team_id' | 'session_id' | 'version' | 'publish_attempts' | 'last_publish_error' | 'dead_lettered_at'
>;

/**
 * Records failed publishes in one statement: each row's attempt count goes up and its next try waits
 * `baseDelayMs × 2^attempts` (at most 5 min); the row reaching `maxAttempts` is set aside. A row that got
 * a new version meanwhile is left alone: the failure was its previous version's. Returns the rows set
 * aside by this call.
 */
export async function recordPublishFailures(
  db: Db,
  failures: readonly PublishFailure[],
  { maxAttempts, baseDelayMs }: { maxAttempts: number; baseDelayMs: number },
): Promise<DeadLetter[]> {
  if (failures.length === 0) return [];
  const result = await sql<DeadLetterRow>`update wizard_sessions set
      publish_attempts = wizard_sessions.publish_attempts + 1,
      last_publish_error = failed.error,
      next_publish_at = now() + make_interval(secs => least(300, ${baseDelayMs / 1000}::float8 * 2 ^ wizard_sessions.publish_attempts)),
      dead_lettered_at = case when wizard_sessions.publish_attempts + 1 >= ${maxAttempts}::int then now() end
    from (select unnest(${failures.map((failure) => failure.id)}::uuid[]) as id,
                 unnest(${failures.map((failure) => failure.version)}::bigint[]) as version,
                 unnest(${failures.map((failure) => failure.error.slice(0, 2000))}::text[]) as error) as failed
    where wizard_sessions.id = failed.id and wizard_sessions.version = failed.version
    returning wizard_sessions.team_id, wizard_sessions.session_id, wizard_sessions.version,
      wizard_sessions.publish_attempts, wizard_sessions.last_publish_error, wizard_sessions.dead_lettered_at`.execute(
    db,
  );
  return result.rows.filter((row) => row.dead_lettered_at !== null).map(deadLetter);
}

function deadLetter(row: DeadLetterRow): DeadLetter {
  return {
    teamId: row.team_id,
    sessionId: row.session_id,
    version: row.version,
    attempts: row.publish_attempts,
    error: row.last_publish_error,
    deadLetteredAt: row.dead_lettered_at,
  };
}

/** The rows set aside, oldest first (the admin CLI's `dead-letters list`). */
export async function listDeadLetters(db: Db, teamId?: number): Promise<DeadLetter[]> {
  let query = db
    .selectFrom('wizard_sessions')
    .select([
      'team_id',
      'session_id',
      'version',
      'publish_attempts',
      'last_publish_error',
      'dead_lettered_at',
    ])
    .where('dead_lettered_at', 'is not', null)
    .orderBy('dead_lettered_at');
  if (teamId !== undefined) query = query.where('team_id', '=', teamId);
  return (await query.execute()).map(deadLetter);
}

/**
 * Gives set-aside rows back to the relay with a fresh attempt count (after the cause was fixed): all of
 * them, a team's, or one session. Returns how many.
 */
export async function retryDeadLetters(
  db: Db,
  scope: { teamId?: number | undefined; sessionId?: string | undefined } = {},
): Promise<number> {
  let query = db
    .updateTable('wizard_sessions')
    .set({ dead_lettered_at: null, next_publish_at: null, publish_attempts: 0 })
    .where('dead_lettered_at', 'is not', null);
  if (scope.teamId !== undefined) query = query.where('team_id', '=', scope.teamId);
  if (scope.sessionId !== undefined) query = query.where('session_id', '=', scope.sessionId);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Stored sizes of what a push may keep (event_plan, handoff_text), as JSON text: for the pre-commit size check. */
export async function keptFieldBytes(
  db: Db,
  teamId: number,
  sessionId: string,
): Promise<{ eventPlan: number; handoffText: number } | undefined> {
  const row = await db
    .selectFrom('wizard_sessions')
    .select([
      sql<number>`coalesce(octet_length(event_plan::text), 4)`.as('event_plan'),
      sql<number>`coalesce(octet_length(to_json(handoff_text)::text), 4)`.as('handoff_text'),
    ])
    .where('team_id', '=', teamId)
    .where('session_id', '=', sessionId)
    .executeTakeFirst();
  return row && { eventPlan: Number(row.event_plan), handoffText: Number(row.handoff_text) };
}

/**
 * Records that these versions reached NATS; never lowers the marker, and leaves rows already at it
 * alone. The marker commits without waiting for its WAL flush: losing it in a crash only makes the relay
 * publish those versions once more, which subscribers drop, while waiting would double the fsyncs of the
 * upsert path. One statement, so the row locks last one round trip: `set_config(…, true)` inside it sets
 * synchronous_commit for the statement's own (implicit) transaction, which is read at its commit.
 */
export async function markPublished(db: Db, published: ReadonlyMap<string, number>): Promise<void> {
  if (published.size === 0) return;
  const ids = [...published.keys()];
  const versions = ids.map((id) => published.get(id) as number);
  await db
    .with('async_commit', (qb) =>
      qb.selectNoFrom(sql<string>`set_config('synchronous_commit', 'off', true)`.as('setting')),
    )
    .updateTable('wizard_sessions')
    .from([
      sql<{
        id: string;
        version: number;
      }>`(select unnest(${ids}::uuid[]) as id, unnest(${versions}::bigint[]) as version)`.as('confirmed'),
      'async_commit',
    ])
    .set((eb) => ({ published_version: eb.ref('confirmed.version') }))
    .whereRef('wizard_sessions.id', '=', 'confirmed.id')
    .whereRef('wizard_sessions.published_version', '<', 'confirmed.version')
    .execute();
}

/**
 * Records the staleness transition of every idle/running session not updated for more than staleAfterMs
 * (version +1). The row lock and the `stale_marked_at is null` re-check make this exactly once per
 * run, however many replicas sweep at the same moment.
 */
export async function markStaleSessions(db: Db, staleAfterMs: number): Promise<StoredSession[]> {
  const rows = await db
    .with('transitioned', (tx) =>
      tx
        .updateTable('wizard_sessions')
        .set((eb) => ({
          version: eb('version', '+', 1),
          committed_at: sql<Date>`now()`,
          stale_marked_at: sql<Date>`now()`,
        }))
        .where('run_phase', 'in', ['idle', 'running'])
        .where('stale_marked_at', 'is', null)
        // A row set aside stays as it is until a push or an operator's retry.
        .where('dead_lettered_at', 'is', null)
        .where('updated_at', '<', sql<Date>`now() - make_interval(secs => ${staleAfterMs / 1000})`)
        .returningAll(),
    )
    .selectFrom('transitioned')
    .leftJoin('users', 'users.id', 'transitioned.created_by')
    .selectAll('transitioned')
    .select(['users.email as creator_email', 'users.first_name as creator_first_name'])
    .execute();
  return rows.map(toStoredSession);
}
