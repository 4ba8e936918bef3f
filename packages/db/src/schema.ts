import type { PendingInput, RunPhase, Task } from '@wizard-stream/contracts';
import type { ColumnType, Generated, Insertable, Selectable } from 'kysely';

/** Kysely's view of the tables created by the migrations in ./migrations. */

type Timestamp = ColumnType<Date, Date | string, Date | string>;
type CreatedTimestamp = ColumnType<Date, Date | string | undefined, never>;
type Json<T> = ColumnType<T, string, string>;

export interface TeamsTable {
  id: Generated<number>;
  name: string;
}

export interface UsersTable {
  id: Generated<number>;
  email: string;
  first_name: string;
}

export interface TeamMembersTable {
  team_id: number;
  user_id: number;
}

export interface ApiKeysTable {
  id: Generated<number>;
  user_id: number;
  label: string;
  key_hash: string;
  scopes: string[];
  created_at: CreatedTimestamp;
  last_used_at: Timestamp | null;
  revoked_at: Timestamp | null;
}

export interface WizardSessionsTable {
  id: Generated<string>;
  team_id: number;
  session_id: string;
  workflow_id: string;
  skill_id: string;
  started_at: Timestamp;
  run_phase: RunPhase;
  tasks: Json<Task[]>;
  event_plan: Json<Record<string, unknown>> | null;
  error: Json<Record<string, unknown>> | null;
  pending_input: Json<PendingInput> | null;
  handoff_text: string | null;
  created_by: number | null;
  created_at: CreatedTimestamp;
  updated_at: Timestamp;
  /** 1 on create, +1 on every accepted change (upserts and stale transitions). */
  version: number;
  /** When the current version was committed; the relay waits a grace period after it. */
  committed_at: Timestamp;
  /** The highest version known to have reached NATS; below `version` means the relay owes a publish. */
  published_version: Generated<number>;
  /** Set when the staleness transition of the current run was recorded; cleared by the next upsert. */
  stale_marked_at: Timestamp | null;
  /** Relay publishes of the current version that failed (0002); reset by every push. */
  publish_attempts: Generated<number>;
  /** After a failed relay publish: not retried before this (backoff). */
  next_publish_at: Timestamp | null;
  /** Set after RELAY_MAX_ATTEMPTS failures: the relay leaves the row alone until a push or a retry. */
  dead_lettered_at: Timestamp | null;
  /** What the last failed publish said, for operators. */
  last_publish_error: string | null;
}

export interface DatabaseSchema {
  teams: TeamsTable;
  users: UsersTable;
  team_members: TeamMembersTable;
  api_keys: ApiKeysTable;
  wizard_sessions: WizardSessionsTable;
}

export type WizardSessionRow = Selectable<WizardSessionsTable>;
export type NewWizardSession = Insertable<WizardSessionsTable>;
export type ApiKeyRow = Selectable<ApiKeysTable>;
