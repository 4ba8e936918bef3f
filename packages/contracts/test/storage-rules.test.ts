import { describe, expect, it } from 'vitest';
import {
  ApiError,
  findUnfaithfulNumber,
  isoInstant,
  parseUpsertBody,
  RESERVED_SESSION_IDS,
  unfaithfulNumber,
} from '../src/index.js';

const body = {
  session_id: 's',
  workflow_id: 'w',
  skill_id: 'k',
  started_at: '2026-11-25T10:00:00Z',
  run_phase: 'running',
};

function attrOf(action: () => unknown): string | null | undefined {
  try {
    action();
  } catch (error) {
    if (error instanceof ApiError) return error.body.attr;
    throw error;
  }
  return undefined;
}

describe('timestamps as instants PostgreSQL stores and every reader prints', () => {
  it.each([
    ['2026-01-02T03:04:05+15:59', '2026-01-01T11:05:05.000Z'],
    ['2026-01-02T03:04:05-15:59', '2026-01-02T19:03:05.000Z'],
    ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00.000Z'],
    ['9999-12-31T23:59:59.999Z', '9999-12-31T23:59:59.999Z'],
    ['2026-01-02T03:04:05.9999999Z', '2026-01-02T03:04:05.999Z'],
  ])('accepts %s as %s', (value, instant) => {
    const result = isoInstant(value);
    expect(result.ok && result.date.toISOString()).toBe(instant);
    expect(parseUpsertBody({ ...body, started_at: value }).started_at).toBe(instant);
  });

  it.each([
    '2026-01-02T03:04:05+16:00',
    '2026-01-02T03:04:05-23:59',
    '0001-01-01T00:00:00+14:00',
    '0000-06-01T00:00:00Z',
    '9999-12-31T23:00:00-05:00',
  ])('refuses %s naming the field', (value) => {
    expect(attrOf(() => parseUpsertBody({ ...body, started_at: value }))).toBe('started_at');
    expect(
      attrOf(() =>
        parseUpsertBody({ ...body, pending_input: { id: 'q', question_count: 1, asked_at: value } }),
      ),
    ).toBe('pending_input__asked_at');
  });
});

describe('numbers that survive storage unchanged', () => {
  it.each(['0', '-0', '1', '1.0', '0.1', '123.456', '1E2', '1.5e3', '0.0000001', '100000000000000000000'])(
    'accepts %s',
    (token) => expect(unfaithfulNumber(token)).toBeUndefined(),
  );

  it.each([
    ['1e400', 'outside the range'],
    ['-1e400', 'outside the range'],
    ['12345678901234567890', 'more precision'],
    ['1e-400', 'more precision'],
    ['1e20', 'stored as 100000000000000000000'],
    ['1e-7', 'stored as 0.0000001'],
    ['5e-324', 'stored as'],
  ])('refuses %s', (token, reason) => expect(unfaithfulNumber(token)).toContain(reason));

  it('names the path of the first refused number, skipping strings, keys and fields that are dropped', () => {
    const text = '{"timestamp":1e20,"event_plan":{"a\\\\":"1e20","b":[true,null,{"1e5":1},2,1e5]}}';
    expect(findUnfaithfulNumber(text, (path) => path[0] === 'event_plan')?.path).toEqual([
      'event_plan',
      'b',
      4,
    ]);
    expect(findUnfaithfulNumber('{"a":[[],{},[1,2]],"b":1e20}')?.path).toEqual(['b']);
  });

  it('refuses through parseUpsertBody with the text, attr naming the field', () => {
    const text = JSON.stringify({ ...body, event_plan: { n: '__n__' } }).replace('"__n__"', '1e20');
    expect(attrOf(() => parseUpsertBody(JSON.parse(text), text))).toBe('event_plan__n');
    const dropped = JSON.stringify({ ...body, timestamp: '__n__' }).replace('"__n__"', '1e20');
    expect(attrOf(() => parseUpsertBody(JSON.parse(dropped), dropped))).toBeUndefined();
    // Without the text (a value built in code) a non-finite number is still refused.
    expect(attrOf(() => parseUpsertBody({ ...body, error: { at: Number.POSITIVE_INFINITY } }))).toBe(
      'error__at',
    );
  });
});

describe('reserved session ids', () => {
  it.each([...RESERVED_SESSION_IDS])('refuses %s', (sessionId) => {
    expect(attrOf(() => parseUpsertBody({ ...body, session_id: sessionId }))).toBe('session_id');
  });

  it.each(['Latest', 'latest-1', '...', 'streams'])('accepts %s', (sessionId) => {
    expect(parseUpsertBody({ ...body, session_id: sessionId }).session_id).toBe(sessionId);
  });
});
