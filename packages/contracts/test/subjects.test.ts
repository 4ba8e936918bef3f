import { describe, expect, it } from 'vitest';
import {
  decodeSubjectToken,
  encodeSubjectToken,
  parseSessionSubject,
  sessionSubject,
  streamSubject,
} from '../src/index.js';

describe('subject naming', () => {
  it('encodes dots so that an id stays one token', () => {
    expect(sessionSubject(7, 'posthog.integration', 'next.js')).toBe(
      'wizard.7.posthog%2Eintegration.next%2Ejs',
    );
    expect(sessionSubject(7, 'a', 'b').split('.')).toHaveLength(4);
  });

  it('decodes exactly what it encoded', () => {
    for (const id of ['a', 'a.b', '...', 'x-y_z.1', '%2E'.replace('%', '')]) {
      expect(decodeSubjectToken(encodeSubjectToken(id))).toBe(id);
    }
    expect(parseSessionSubject(sessionSubject(12, 'w.f', 's.k'))).toEqual({
      teamId: 12,
      workflowId: 'w.f',
      skillId: 's.k',
    });
  });

  it('subscribes to a workflow with a single-token wildcard', () => {
    expect(streamSubject(3, 'a')).toBe('wizard.3.a.*');
    expect(streamSubject(3, 'a', 'b')).toBe('wizard.3.a.b');
    // A workflow "a" must never match workflow "a.b": its encoded token differs.
    expect(sessionSubject(3, 'a.b', 'c').startsWith('wizard.3.a.')).toBe(false);
  });

  it('refuses ids that could change the subject structure', () => {
    for (const id of ['*', '>', 'a b', '', 'a%2Eb', 'x\n']) {
      expect(() => encodeSubjectToken(id)).toThrow(/not a valid routing id/);
    }
    expect(() => sessionSubject(0, 'a', 'b')).toThrow(/positive integers/);
    expect(parseSessionSubject('wizard.1.a.b.c')).toBeUndefined();
    expect(parseSessionSubject('wizard.x.a.b')).toBeUndefined();
  });
});
