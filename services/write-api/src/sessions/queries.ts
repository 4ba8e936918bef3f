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

export async function listSessions(
  db: Db,
  teamId: number,
  filter: SessionFilter,
  page: { offset: number; limit: number },
): Promise<{ count: number; sessions: StoredSession[] }> {
  const [rows, total] = await Promise.all([
    filtered(selectWithCreator(db), teamId, filter)
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

/** Committed versions that no publish has been confirmed for, older than the grace period. */
export async function unpublishedSessions(db: Db, graceMs: number, limit: number): Promise<StoredSession[]> {
  const rows = await selectWithCreator(db)
    .where(sql.ref('wizard_sessions.published_version'), '<', sql.ref('wizard_sessions.version'))
    .where('wizard_sessions.committed_at', '<', sql<Date>`now() - make_interval(secs => ${graceMs / 1000})`)
    .orderBy('wizard_sessions.committed_at')
    .limit(limit)
    .execute();
  return rows.map(toStoredSession);
}

export async function publishBacklog(db: Db): Promise<{ count: number; oldest: Date | null }> {
  const row = await db
    .selectFrom('wizard_sessions')
    .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.min('committed_at').as('oldest')])
    .where(sql.ref('published_version'), '<', sql.ref('version'))
    .executeTakeFirstOrThrow();
  return { count: Number(row.count), oldest: row.oldest as Date | null };
}

/**
 * Records that these versions reached NATS; never lowers the marker. The marker commits without waiting
 * for its WAL flush: losing it in a crash only makes the relay publish those versions once more, which
 * subscribers drop, while waiting would double the fsyncs of the upsert path.
 */
export async function markPublished(db: Db, published: ReadonlyMap<string, number>): Promise<void> {
  if (published.size === 0) return;
  const ids = [...published.keys()];
  const versions = ids.map((id) => published.get(id) as number);
  await db.transaction().execute(async (trx) => {
    await sql`set local synchronous_commit = off`.execute(trx);
    await trx
      .updateTable('wizard_sessions')
      .from(
        sql<{
          id: string;
          version: number;
        }>`(select unnest(${ids}::uuid[]) as id, unnest(${versions}::bigint[]) as version)`.as('confirmed'),
      )
      .set((eb) => ({
        published_version: eb.fn('greatest', [
          eb.ref('wizard_sessions.published_version'),
          eb.ref('confirmed.version'),
        ]),
      }))
      .whereRef('wizard_sessions.id', '=', 'confirmed.id')
      .execute();
  });
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
