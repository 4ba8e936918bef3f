import { describe, expect, it } from 'vitest';
import {
  describePendingInput,
  describeSessionError,
  eventPlanEntries,
  formatAgo,
  formatDuration,
  formatTimestamp,
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

  it('splits a session error into type, message and its other fields', () => {
    expect(describeSessionError({ type: 'InstallError', message: 'npm failed' })).toEqual({
      type: 'InstallError',
      message: 'npm failed',
      details: '',
    });
    expect(describeSessionError({ message: 'boom', code: 1 })).toEqual({
      type: 'Error',
      message: 'boom',
      details: '{\n  "code": 1\n}',
    });
    expect(describeSessionError({ type: 42, message: { nested: true } })).toMatchObject({
      type: '42',
      message: '{"nested":true}',
    });
  });

  it('formats a start time to the second, in UTC when asked', () => {
    expect(formatTimestamp('2026-03-04T05:06:07.890Z', { utc: true })).toBe('2026-03-04 05:06:07');
    expect(formatTimestamp('yesterday')).toBe('—');
  });

  it("reads the CLI's event plan as rows, and nothing else", () => {
    expect(
      eventPlanEntries({
        events: [
          { name: 'user_signed_up', description: 'A new account was created' },
          { name: 'checkout_started' },
        ],
      }),
    ).toEqual([
      { name: 'user_signed_up', description: 'A new account was created' },
      { name: 'checkout_started', description: '' },
    ]);
    expect(eventPlanEntries({ events: [{ description: 'no name' }] })).toBeUndefined();
    expect(eventPlanEntries({ plan: 'free text' })).toBeUndefined();
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
});
