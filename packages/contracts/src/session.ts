import { z } from 'zod';
import { invalidField, parseInput } from './errors.js';
import { sessionIdSchema, skillIdSchema, workflowIdSchema } from './ids.js';
import { MAX_BODY_NESTING, nestsDeeperThan } from './nesting.js';
import { findNonFiniteNumber, findUnfaithfulNumber } from './numbers.js';
import { findUnstorableString } from './strings.js';
import { isoInstantSchema, isoTimestampSchema } from './timestamps.js';

export const RUN_PHASES = ['idle', 'running', 'completed', 'error'] as const;
export const TASK_STATUSES = ['pending', 'in_progress', 'completed', 'failed', 'canceled'] as const;
export const HANDOFF_TEXT_MAX_BYTES = 64 * 1024;
export const MAX_BODY_BYTES = 1024 * 1024;

export type RunPhase = (typeof RUN_PHASES)[number];
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const runPhaseSchema = z.enum(RUN_PHASES);

/**
 * The CLI's enum spells `cancelled`, PostHog's server `canceled`: both are accepted, and a task is
 * stored and served as `canceled` (docs/data-model.md).
 */
export const taskStatusSchema = z
  .enum([...TASK_STATUSES, 'cancelled'])
  .transform((status): TaskStatus => (status === 'cancelled' ? 'canceled' : status));

export const taskSchema = z.object({
  id: z.string().max(255),
  title: z.string().max(2000),
  status: taskStatusSchema,
});
export type Task = z.infer<typeof taskSchema>;

/** A free JSON object (error, event_plan): any keys, but an object, not an array or a scalar. */
const jsonObjectSchema = z.record(z.string(), z.unknown());

export const pendingInputSchema = z
  .object({
    id: z.string().min(1).max(255),
    asked_at: isoTimestampSchema.nullish(),
    question_count: z.int().min(1).max(100),
    sensitive: z.boolean().default(false),
    prompts: z.array(z.string().max(2000)).max(10).nullish(),
  })
  // A sensitive question's prompt text never reaches storage: the session row is visible to the team.
  .transform(({ prompts, ...rest }) => (rest.sensitive || prompts == null ? rest : { ...rest, prompts }));
export type PendingInput = z.infer<typeof pendingInputSchema>;

export const upsertSessionBodySchema = z
  .object({
    session_id: sessionIdSchema,
    workflow_id: workflowIdSchema,
    skill_id: skillIdSchema,
    started_at: isoInstantSchema,
    run_phase: runPhaseSchema,
    tasks: z.array(taskSchema).default([]),
    event_plan: jsonObjectSchema.nullish(),
    error: jsonObjectSchema.nullish(),
    pending_input: pendingInputSchema.nullish(),
    handoff_text: z
      .string()
      .refine((text) => Buffer.byteLength(text, 'utf8') <= HANDOFF_TEXT_MAX_BYTES, {
        error: `handoff_text must be at most ${HANDOFF_TEXT_MAX_BYTES} bytes.`,
      })
      .nullish(),
  })
  .superRefine((body, ctx) => {
    // First, and iteratively: the recursive walk below (and JSON.stringify later) would overflow on it.
    if (nestsDeeperThan(body, MAX_BODY_NESTING)) {
      ctx.addIssue({
        code: 'custom',
        path: [],
        message: `The request body nests deeper than ${MAX_BODY_NESTING} levels.`,
      });
      return;
    }
    const path = findUnstorableString(body);
    if (path)
      ctx.addIssue({ code: 'custom', path, message: 'contains a NUL character or a lone surrogate.' });
    const nonFinite = findNonFiniteNumber(body);
    if (nonFinite)
      ctx.addIssue({
        code: 'custom',
        path: nonFinite,
        message: 'is not a finite number (JSON has no Infinity or NaN).',
      });
  });
export type UpsertSessionBody = z.infer<typeof upsertSessionBodySchema>;

/** Where a pushed number is kept (and so must survive storage): everything else is dropped or a string. */
function isStoredNumberPath(path: readonly (string | number)[]): boolean {
  const [field, child] = path;
  return (
    field === 'event_plan' || field === 'error' || (field === 'pending_input' && child === 'question_count')
  );
}

/**
 * Every rule of a push, in one place: the schema, then, given the JSON text it was parsed from, that
 * each kept number survives storage unchanged (numbers.ts). Throws the documented 400 naming the field.
 */
export function parseUpsertBody(value: unknown, jsonText?: string): UpsertSessionBody {
  const body = parseInput(upsertSessionBodySchema, value);
  if (jsonText !== undefined) {
    const found = findUnfaithfulNumber(jsonText, isStoredNumberPath);
    if (found) throw invalidField(found.path, found.message);
  }
  return body;
}

const blankToUndefined = (value: unknown) => (value === '' ? undefined : value);

export const listSessionsQuerySchema = z.object({
  workflow_id: z.preprocess(blankToUndefined, workflowIdSchema.optional()),
  skill_id: z.preprocess(blankToUndefined, skillIdSchema.optional()),
  offset: z.preprocess(blankToUndefined, z.coerce.number().int().min(0).max(1_000_000_000).default(0)),
  limit: z.preprocess(blankToUndefined, z.coerce.number().int().min(1).max(200).default(50)),
});

export const latestSessionQuerySchema = z.object({
  workflow_id: z.preprocess(blankToUndefined, workflowIdSchema),
  skill_id: z.preprocess(blankToUndefined, skillIdSchema.optional()),
});

/** The stream route takes the same filters as latest. */
export const streamQuerySchema = latestSessionQuerySchema;

export interface SessionCreator {
  id: number;
  first_name: string;
  email: string;
}

/** A stored session as the services read it, before it becomes a DTO. */
export interface SessionRecord {
  teamId: number;
  sessionId: string;
  workflowId: string;
  skillId: string;
  startedAt: Date;
  runPhase: RunPhase;
  tasks: Task[];
  eventPlan: Record<string, unknown> | null;
  error: Record<string, unknown> | null;
  pendingInput: PendingInput | null;
  handoffText: string | null;
  createdBy: SessionCreator | null;
  createdAt: Date;
  updatedAt: Date;
  version: number;
}

export interface SessionDto {
  session_id: string;
  team_id: number;
  workflow_id: string;
  skill_id: string;
  started_at: string;
  run_phase: RunPhase;
  tasks: Task[];
  event_plan: Record<string, unknown> | null;
  error: Record<string, unknown> | null;
  pending_input: PendingInput | null;
  handoff_text: string | null;
  created_by: SessionCreator | null;
  created_at: string;
  updated_at: string;
  is_stale: boolean;
  version: number;
}

export const DEFAULT_STALE_AFTER_MS = 10 * 60 * 1000;

/** Idle and running sessions go stale once not updated for strictly more than staleAfterMs. */
export function isStale(
  runPhase: RunPhase,
  updatedAt: Date,
  now: Date,
  staleAfterMs: number = DEFAULT_STALE_AFTER_MS,
): boolean {
  return (
    (runPhase === 'idle' || runPhase === 'running') && now.getTime() - updatedAt.getTime() > staleAfterMs
  );
}

export interface SerializeOptions {
  now: Date;
  staleAfterMs: number;
}

/** The DTO, with its fields in the order of docs/wire-format.md#the-session-dto (object key order is insertion order). */
export function toSessionDto(record: SessionRecord, { now, staleAfterMs }: SerializeOptions): SessionDto {
  return {
    session_id: record.sessionId,
    team_id: record.teamId,
    workflow_id: record.workflowId,
    skill_id: record.skillId,
    started_at: record.startedAt.toISOString(),
    run_phase: record.runPhase,
    tasks: record.tasks,
    event_plan: record.eventPlan,
    error: record.error,
    pending_input: record.pendingInput,
    handoff_text: record.handoffText,
    created_by: record.createdBy
      ? { id: record.createdBy.id, first_name: record.createdBy.first_name, email: record.createdBy.email }
      : null,
    created_at: record.createdAt.toISOString(),
    updated_at: record.updatedAt.toISOString(),
    is_stale: isStale(record.runPhase, record.updatedAt, now, staleAfterMs),
    version: record.version,
  };
}

/**
 * The one serializer: every REST body, SSE frame and NATS payload carrying a session is these bytes.
 */
export function serializeSession(record: SessionRecord, options: SerializeOptions): string {
  return JSON.stringify(toSessionDto(record, options));
}

export interface SessionPage {
  count: number;
  next: string | null;
  previous: string | null;
}

/**
 * A list page holds at most `limit` sessions and, past the first, stops adding sessions once their
 * serialized bytes reach this budget: `next` then points at the rest. A page's size is bounded whatever
 * the rows hold (200 rows near the body limit would otherwise be a 200 MB string).
 */
export const LIST_PAGE_MAX_BYTES = 4 * 1024 * 1024;

/** A list response around already-serialized sessions, so list items are byte-identical to the DTO. */
export function serializeSessionPage(page: SessionPage, serializedSessions: readonly string[]): string {
  return `{"count":${page.count},"next":${JSON.stringify(page.next)},"previous":${JSON.stringify(page.previous)},"results":[${serializedSessions.join(',')}]}`;
}

/** What a client receives; parsed leniently so that fields added later do not break old clients. */
export const sessionDtoSchema = z.looseObject({
  session_id: z.string(),
  team_id: z.number(),
  workflow_id: z.string(),
  skill_id: z.string(),
  started_at: z.string(),
  run_phase: runPhaseSchema,
  tasks: z.array(z.looseObject({ id: z.string(), title: z.string(), status: z.enum(TASK_STATUSES) })),
  event_plan: z.record(z.string(), z.unknown()).nullable(),
  error: z.record(z.string(), z.unknown()).nullable(),
  pending_input: z
    .looseObject({
      id: z.string(),
      asked_at: z.string().nullish(),
      question_count: z.number(),
      sensitive: z.boolean(),
      prompts: z.array(z.string()).nullish(),
    })
    .nullable(),
  handoff_text: z.string().nullable(),
  created_by: z.object({ id: z.number(), first_name: z.string(), email: z.string() }).nullable(),
  created_at: z.string(),
  updated_at: z.string(),
  is_stale: z.boolean(),
  version: z.number(),
});
