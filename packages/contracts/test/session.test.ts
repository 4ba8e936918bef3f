import { describe, expect, it } from 'vitest';
import {
  apiErrorFromZod,
  isStale,
  type SessionRecord,
  serializeSession,
  upsertSessionBodySchema,
} from '../src/index.js';

const body = {
  session_id: 'posthog-integration-nextjs-2026-11-25T10:00:00Z',
  workflow_id: 'posthog-integration',
  skill_id: 'nextjs',
  started_at: '2026-11-25T10:00:00Z',
  run_phase: 'running',
  tasks: [{ id: '0', title: 'Install', status: 'in_progress' }],
  timestamp: '2026-11-25T10:00:01Z',
};

describe('upsert body', () => {
  it('accepts what the wizard CLI sends and drops unknown fields', () => {
    const parsed = upsertSessionBodySchema.parse(body);
    expect(parsed).not.toHaveProperty('timestamp');
    expect(parsed.tasks).toHaveLength(1);
  });

  it('drops prompts of a sensitive question before saving', () => {
    const parsed = upsertSessionBodySchema.parse({
      ...body,
      pending_input: { id: 'q1', question_count: 1, sensitive: true, prompts: ['your API key?'] },
    });
    expect(parsed.pending_input).toEqual({ id: 'q1', question_count: 1, sensitive: true });
  });

  it.each([
    ['task status pizza', { tasks: [{ id: '0', title: 't', status: 'pizza' }] }, 'tasks__0__status'],
    ['run_phase exploded', { run_phase: 'exploded' }, 'run_phase'],
    ['a dotted workflow with a space', { workflow_id: 'a b' }, 'workflow_id'],
    ['whitespace in session_id', { session_id: 'a b' }, 'session_id'],
    [
      'a 2001-character prompt',
      { pending_input: { id: 'q', question_count: 1, prompts: ['x'.repeat(2001)] } },
      'pending_input__prompts__0',
    ],
    [
      '11 prompts',
      { pending_input: { id: 'q', question_count: 1, prompts: Array(11).fill('p') } },
      'pending_input__prompts',
    ],
    ['question_count 0', { pending_input: { id: 'q', question_count: 0 } }, 'pending_input__question_count'],
    ['a NUL inside event_plan', { event_plan: { a: ['ok', 'bad\u0000'] } }, 'event_plan__a__1'],
    ['a lone surrogate in handoff_text', { handoff_text: 'x\ud800' }, 'handoff_text'],
  ])('rejects %s, naming the field', (_name, patch, attr) => {
    const result = upsertSessionBodySchema.safeParse({ ...body, ...patch });
    expect(result.success).toBe(false);
    if (!result.success) expect(apiErrorFromZod(result.error).body.attr).toBe(attr);
  });

  it('refuses a free JSON field nested deeper than 64 levels without overflowing the stack', () => {
    let deep: unknown = 'leaf';
    for (let level = 0; level < 100_000; level++) deep = { next: deep };
    const result = upsertSessionBodySchema.safeParse({ ...body, event_plan: deep });
    expect(result.success).toBe(false);
    if (!result.success) expect(result.error.issues[0]?.message).toMatch(/deeper than 64 levels/);
    let shallow: unknown = 'leaf';
    for (let level = 0; level < 60; level++) shallow = [shallow];
    expect(upsertSessionBodySchema.safeParse({ ...body, error: { shallow } }).success).toBe(true);
  });

  it('refuses timestamps in year 0, which PostgreSQL cannot store; year 1 is fine', () => {
    expect(upsertSessionBodySchema.safeParse({ ...body, started_at: '0000-12-31T23:00:00Z' }).success).toBe(
      false,
    );
    const askedAt = { id: 'q1', question_count: 1, asked_at: '0000-01-01T00:00:00Z' };
    expect(upsertSessionBodySchema.safeParse({ ...body, pending_input: askedAt }).success).toBe(false);
    expect(upsertSessionBodySchema.safeParse({ ...body, started_at: '0001-01-01T00:00:00Z' }).success).toBe(
      true,
    );
  });

  it('limits handoff_text to 64 KiB of UTF-8', () => {
    expect(upsertSessionBodySchema.safeParse({ ...body, handoff_text: 'x'.repeat(65536) }).success).toBe(
      true,
    );
    expect(upsertSessionBodySchema.safeParse({ ...body, handoff_text: 'é'.repeat(32769) }).success).toBe(
      false,
    );
  });
});

describe('the serializer', () => {
  const record: SessionRecord = {
    teamId: 1,
    sessionId: 's',
    workflowId: 'w',
    skillId: 'k',
    startedAt: new Date('2026-11-25T10:00:00Z'),
    runPhase: 'running',
    tasks: [],
    eventPlan: null,
    error: null,
    pendingInput: null,
    handoffText: null,
    createdBy: { id: 2, first_name: 'Ada', email: 'ada@example.com' },
    createdAt: new Date('2026-11-25T10:00:00Z'),
    updatedAt: new Date('2026-11-25T10:00:00Z'),
    version: 4,
  };

  it('writes the fields in the order of docs/wire-format.md#the-session-dto with UTC timestamps', () => {
    const json = serializeSession(record, { now: new Date('2026-11-25T10:01:00Z'), staleAfterMs: 600_000 });
    expect(Object.keys(JSON.parse(json))).toEqual([
      'session_id',
      'team_id',
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
      'created_at',
      'updated_at',
      'is_stale',
      'version',
    ]);
    expect(json).toContain('"started_at":"2026-11-25T10:00:00.000Z"');
  });

  it('marks idle and running sessions stale strictly after the threshold', () => {
    const updated = new Date('2026-11-25T10:00:00Z');
    const at = (ms: number) => new Date(updated.getTime() + ms);
    expect(isStale('running', updated, at(600_000 - 1000))).toBe(false);
    expect(isStale('running', updated, at(600_000))).toBe(false);
    expect(isStale('running', updated, at(600_000 + 1000))).toBe(true);
    expect(isStale('idle', updated, at(600_001))).toBe(true);
    expect(isStale('completed', updated, at(10 ** 9))).toBe(false);
    expect(isStale('error', updated, at(10 ** 9))).toBe(false);
  });
});
