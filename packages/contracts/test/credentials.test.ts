import { describe, expect, it } from 'vitest';
import {
  credentialFrom,
  isApiKeyShape,
  parseConnectsHeader,
  parsePrincipalHeader,
  splitStreamToken,
} from '../src/credentials.js';
import { parseRevocation, revocationMatches } from '../src/revocations.js';
import { REVOCATIONS_SUBJECT } from '../src/subjects.js';

const key = `wsk_${Buffer.alloc(32, 7).toString('base64url')}`;
const token = `wst_${Buffer.from('{"u":1}').toString('base64url')}.${Buffer.alloc(32, 9).toString('base64url')}`;

describe('the credential grammar', () => {
  it('accepts one spelling of a key and of a stream token', () => {
    expect(isApiKeyShape(key)).toBe(true);
    expect(splitStreamToken(token)).toBeDefined();
    for (const other of [`${key}=`, `${key}A`, key.slice(0, -1), `${key.slice(0, -1)}D`]) {
      expect(isApiKeyShape(other), other).toBe(false);
    }
    for (const other of [`${token}=`, `${token}==`, `${token}.x`, `${token}A`, token.replace('.', '=.')]) {
      expect(splitStreamToken(other), other).toBeUndefined();
    }
  });

  it('takes a query credential only when it is a stream token, and the header first', () => {
    expect(credentialFrom(undefined, token)).toBe(token);
    expect(credentialFrom(undefined, key)).toBeUndefined();
    expect(credentialFrom(undefined, 'internal-secret-0123456789')).toBeUndefined();
    expect(credentialFrom(`Bearer ${key}`, token)).toBe(key);
  });

  it('parses the principal and connects headers strictly', () => {
    expect(parsePrincipalHeader('user=3; key=12')).toEqual({ userId: 3, keyId: 12 });
    for (const bad of ['user=3;key=12', 'user=0; key=1', 'user=3; key=12x', undefined, null]) {
      expect(parsePrincipalHeader(bad)).toBeUndefined();
    }
    expect(parseConnectsHeader('7')).toBe(7);
    expect(parseConnectsHeader(['7'])).toBe(1);
    expect(parseConnectsHeader('0')).toBe(1);
    expect(parseConnectsHeader('99999')).toBe(1);
  });
});

describe('revocations', () => {
  it('live on a three-token subject no session subject or stream subscription matches', () => {
    expect(REVOCATIONS_SUBJECT).toBe('wizard.control.revocations');
    expect(REVOCATIONS_SUBJECT.split('.')).toHaveLength(3);
  });

  it('match a stream when every id they name is its owner’s', () => {
    const owner = { teamId: 1, userId: 2, keyId: 3 };
    const at = '2026-01-01T00:00:00.000Z';
    const parse = (value: object) => parseRevocation(JSON.stringify({ revoked_at: at, ...value }));
    expect(revocationMatches(parse({ key_id: 3, user_id: 2 }) as never, owner)).toBe(true);
    expect(revocationMatches(parse({ key_id: 4 }) as never, owner)).toBe(false);
    expect(revocationMatches(parse({ user_id: 2, team_id: 1 }) as never, owner)).toBe(true);
    expect(revocationMatches(parse({ user_id: 2, team_id: 5 }) as never, owner)).toBe(false);
    expect(parse({})).toBeUndefined();
    expect(parse({ key_id: -1 })).toBeUndefined();
    expect(parseRevocation('not json')).toBeUndefined();
  });
});
