import { describe, expect, it } from 'vitest';
import { formatAgo, formatDuration, formatSessionError, settingsFromUrl } from '../src/index.js';

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
