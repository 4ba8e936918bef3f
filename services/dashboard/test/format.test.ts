import { describe, expect, it } from 'vitest';
import {
  describePendingInput,
  formatAgo,
  formatDuration,
  formatSessionError,
  replacesShownSession,
  settingsFromUrl,
} from '../src/index.js';

describe('dashboard formatting', () => {
  it('formats durations at each scale', () => {
    expect(formatDuration(42.4)).toBe('42 ms');
    expect(formatDuration(1500)).toBe('1.5 s');
    expect(formatDuration(125_000)).toBe('2 min 5 s');
    expect(formatDuration(2 * 3_600_000 + 60_000)).toBe('2 h 1 min');
    expect(formatDuration(Number.NaN)).toBe('—');
  });

  it('says how long ago an update was, never negative under clock skew', () => {
    const now = Date.parse('2026-01-01T00:01:00Z');
    expect(formatAgo('2026-01-01T00:00:30Z', now)).toBe('30.0 s ago');
    expect(formatAgo('2026-01-01T00:01:05Z', now)).toBe('0 ms ago');
    expect(formatAgo('not a date', now)).toBe('—');
  });

  it('shows a session error as "type: message" plus its other fields', () => {
    expect(formatSessionError({ type: 'InstallError', message: 'npm failed' })).toBe(
      'InstallError: npm failed',
    );
    expect(formatSessionError({ message: 'boom', code: 1 })).toBe('boom\n{\n  "code": 1\n}');
  });

  it('reads what to follow from the URL, never a key', () => {
    expect(settingsFromUrl('?project=2&workflow=w.1&skill=s&connect=1&apiKey=leak')).toEqual({
      connect: true,
      projectId: '2',
      workflowId: 'w.1',
      skillId: 's',
    });
    expect(settingsFromUrl('')).toEqual({ connect: false });
  });
});

describe('what the dashboard shows', () => {
  it('never shows the prompts of a sensitive question, even when a server sent them', () => {
    expect(
      describePendingInput({
        id: 'q1',
        question_count: 1,
        sensitive: true,
        prompts: ['Paste your secret key sk_live_123'],
      }),
    ).toEqual({ summary: 'Input required', prompts: [] });
    expect(
      describePendingInput({
        id: 'q2',
        question_count: 2,
        sensitive: false,
        prompts: ['Which events?', 'Where?'],
      }),
    ).toEqual({ summary: '2 questions waiting', prompts: ['Which events?', 'Where?'] });
  });

  it('keeps following the latest session when an older one of the workflow updates', () => {
    const base = {
      team_id: 1,
      workflow_id: 'wf',
      skill_id: 'setup',
      run_phase: 'running' as const,
      tasks: [],
      event_plan: null,
      error: null,
      pending_input: null,
      handoff_text: null,
      created_by: null,
      updated_at: '2026-01-01T00:30:00.000Z',
      is_stale: false,
      version: 1,
    };
    const shown = {
      ...base,
      session_id: 'new',
      started_at: '2026-01-01T00:10:00.000Z',
      created_at: '2026-01-01T00:10:01.000Z',
    };
    const older = {
      ...base,
      session_id: 'old',
      started_at: '2026-01-01T00:00:00.000Z',
      created_at: '2026-01-01T00:00:01.000Z',
      is_stale: true,
      version: 7,
    };
    expect(replacesShownSession(older, shown)).toBe(false);
    expect(replacesShownSession(shown, older)).toBe(true);
    expect(replacesShownSession(older, undefined)).toBe(true);
    expect(replacesShownSession({ ...shown, version: 2 }, shown)).toBe(true);
    // Same start: the later-created session is the latest, as for the API's `latest` call.
    const twin = { ...older, started_at: shown.started_at, created_at: '2026-01-01T00:10:02.000Z' };
    expect(replacesShownSession(twin, shown)).toBe(true);
    expect(replacesShownSession(shown, twin)).toBe(false);
  });
});
