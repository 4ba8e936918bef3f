import { type Kysely, sql } from 'kysely';

/**
 * Per-row publish bookkeeping, so that one row the relay cannot publish never holds up the others: it
 * is retried with backoff (`next_publish_at`) and, after RELAY_MAX_ATTEMPTS failures, set aside
 * (`dead_lettered_at`) until a new push or an operator's retry clears it.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations describe the schema as it was then (see 0001)
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('wizard_sessions')
    .addColumn('publish_attempts', 'integer', (col) => col.notNull().defaultTo(0))
    .addColumn('next_publish_at', 'timestamptz')
    .addColumn('dead_lettered_at', 'timestamptz')
    .addColumn('last_publish_error', 'text')
    .execute();

  // The relay's index now leaves set-aside rows out, so they cost its query nothing.
  await db.schema.dropIndex('wizard_sessions_unpublished').execute();
  await db.schema
    .createIndex('wizard_sessions_unpublished')
    .on('wizard_sessions')
    .column('committed_at')
    .where(sql<boolean>`published_version < version and dead_lettered_at is null`)
    .execute();

  await db.schema
    .createIndex('wizard_sessions_dead_lettered')
    .on('wizard_sessions')
    .column('dead_lettered_at')
    .where('dead_lettered_at', 'is not', null)
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('wizard_sessions_dead_lettered').execute();
  await db.schema.dropIndex('wizard_sessions_unpublished').execute();
  await db.schema
    .createIndex('wizard_sessions_unpublished')
    .on('wizard_sessions')
    .column('committed_at')
    .where(sql.ref('published_version'), '<', sql.ref('version'))
    .execute();
  await db.schema
    .alterTable('wizard_sessions')
    .dropColumn('publish_attempts')
    .dropColumn('next_publish_at')
    .dropColumn('dead_lettered_at')
    .dropColumn('last_publish_error')
    .execute();
}
