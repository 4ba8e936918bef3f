import { type Kysely, sql } from 'kysely';

// Migrations take Kysely<any>: they describe the schema as it was then, not as the types say today.
// biome-ignore lint/suspicious/noExplicitAny: see above
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('teams')
    .addColumn('id', 'bigint', (col) => col.generatedByDefaultAsIdentity().primaryKey())
    .addColumn('name', 'text', (col) => col.notNull())
    .execute();

  await db.schema
    .createTable('users')
    .addColumn('id', 'bigint', (col) => col.generatedByDefaultAsIdentity().primaryKey())
    .addColumn('email', 'text', (col) => col.notNull().unique())
    .addColumn('first_name', 'text', (col) => col.notNull().defaultTo(''))
    .execute();

  await db.schema
    .createTable('team_members')
    .addColumn('team_id', 'bigint', (col) => col.notNull().references('teams.id').onDelete('cascade'))
    .addColumn('user_id', 'bigint', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addPrimaryKeyConstraint('team_members_pkey', ['team_id', 'user_id'])
    .execute();

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'bigint', (col) => col.generatedByDefaultAsIdentity().primaryKey())
    .addColumn('user_id', 'bigint', (col) => col.notNull().references('users.id').onDelete('cascade'))
    .addColumn('label', 'text', (col) => col.notNull().defaultTo(''))
    .addColumn('key_hash', 'text', (col) => col.notNull().unique())
    .addColumn('scopes', sql`text[]`, (col) => col.notNull())
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .execute();

  await db.schema
    .createTable('wizard_sessions')
    .addColumn('id', 'uuid', (col) => col.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('team_id', 'bigint', (col) => col.notNull().references('teams.id').onDelete('cascade'))
    .addColumn('session_id', 'text', (col) => col.notNull())
    .addColumn('workflow_id', 'text', (col) => col.notNull())
    .addColumn('skill_id', 'text', (col) => col.notNull())
    .addColumn('started_at', 'timestamptz', (col) => col.notNull())
    .addColumn('run_phase', 'text', (col) =>
      col.notNull().check(sql`run_phase in ('idle', 'running', 'completed', 'error')`),
    )
    .addColumn('tasks', 'jsonb', (col) => col.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('event_plan', 'jsonb')
    .addColumn('error', 'jsonb')
    .addColumn('pending_input', 'jsonb')
    .addColumn('handoff_text', 'text')
    .addColumn('created_by', 'bigint', (col) => col.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('version', 'bigint', (col) => col.notNull().defaultTo(1))
    .addColumn('committed_at', 'timestamptz', (col) => col.notNull().defaultTo(sql`now()`))
    .addColumn('published_version', 'bigint', (col) => col.notNull().defaultTo(0))
    .addColumn('stale_marked_at', 'timestamptz')
    .addUniqueConstraint('wizard_sessions_team_session_unique', ['team_id', 'session_id'])
    .execute();

  await db.schema
    .createIndex('wizard_sessions_team_workflow_skill_started')
    .on('wizard_sessions')
    .columns(['team_id', 'workflow_id', 'skill_id', 'started_at desc'])
    .execute();

  await db.schema
    .createIndex('wizard_sessions_team_workflow_started')
    .on('wizard_sessions')
    .columns(['team_id', 'workflow_id', 'started_at desc'])
    .execute();

  // Small partial indexes: the relay and the staleness sweep only ever look at a handful of rows.
  await db.schema
    .createIndex('wizard_sessions_unpublished')
    .on('wizard_sessions')
    .column('committed_at')
    .where(sql.ref('published_version'), '<', sql.ref('version'))
    .execute();

  await db.schema
    .createIndex('wizard_sessions_may_go_stale')
    .on('wizard_sessions')
    .column('updated_at')
    .where(sql<boolean>`run_phase in ('idle', 'running') and stale_marked_at is null`)
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['wizard_sessions', 'api_keys', 'team_members', 'users', 'teams']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
