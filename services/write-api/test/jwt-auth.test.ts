import { apiErrorBodySchema } from '@wizard-stream/contracts';
import { JwksServer, mintJwt, type SigningKey } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { looksLikeJwt } from '../src/auth/jwt.js';
import { type Harness, startHarness, uniqueSessionBody } from './support/harness.js';
import { sessionsPath } from './support/write-api.js';

const SECRET = 'host-app-shared-secret-0123456789abcdef';
const ISSUER = 'https://host-app.test';
const AUDIENCE = 'wizard-stream';

describe('host-app JWTs on the read path', () => {
  let h: Harness;
  let jwks: JwksServer;
  let rsa: SigningKey;
  let ec: SigningKey;
  let path: string;
  let sessionId: string;
  const claims = (extra: Record<string, unknown> = {}) => ({
    team_id: h.alice.teamId,
    iss: ISSUER,
    aud: AUDIENCE,
    expiresIn: 300,
    ...extra,
  });
  const refused = (response: { status: number; json: unknown }, status: number, code: string) => {
    expect(response.status).toBe(status);
    expect(apiErrorBodySchema.parse(response.json).code).toBe(code);
  };

  beforeAll(async () => {
    jwks = await JwksServer.start();
    rsa = await jwks.addKey('RS256', 'rsa-1');
    ec = await jwks.addKey('ES256', 'ec-1');
    h = await startHarness('pglite', {
      STREAM_JWT_SECRET: SECRET,
      STREAM_JWT_JWKS_URL: jwks.url,
      STREAM_JWT_ISSUER: ISSUER,
      STREAM_JWT_AUDIENCE: AUDIENCE,
      // Every unknown kid refetches at once, so the rotation test needs no wait.
      STREAM_JWT_JWKS_COOLDOWN_MS: '0',
    });
    path = sessionsPath(h.alice.teamId);
    const body = uniqueSessionBody({ workflow_id: 'host-wf' });
    sessionId = body.session_id as string;
    await h.request('POST', path, { body });
    await h.request('POST', path, { body: uniqueSessionBody({ workflow_id: 'other-wf' }) });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await jwks?.close();
  });

  it('recognises a JWT by its shape, and none of our own credentials as one', async () => {
    expect(looksLikeJwt(await mintJwt(SECRET, claims()))).toBe(true);
    expect(looksLikeJwt(h.alice.apiKey)).toBe(false);
    expect(looksLikeJwt('wst_eyJ1IjoxfQ.c2ln')).toBe(false);
    expect(looksLikeJwt('a.b.c')).toBe(false);
  });

  it('reads with an HS256 JWT as Bearer or as ?token=', async () => {
    const token = await mintJwt(SECRET, claims());
    const latest = await h.request('GET', `${path}latest/?workflow_id=host-wf`, { key: token });
    expect(latest.status).toBe(200);
    expect(latest.json.session_id).toBe(sessionId);
    const list = await h.request('GET', `${path}?workflow_id=host-wf&token=${token}`, { key: null });
    expect(list.status).toBe(200);
    expect(list.json.count).toBe(1);
    const detail = await h.request('GET', `${path}${encodeURIComponent(sessionId)}/`, { key: token });
    expect(detail.status).toBe(200);
  });

  it('reads with RS256 and ES256 JWTs from the JWKS, fetched once and cached', async () => {
    const fetchesBefore = jwks.fetches;
    for (const key of [rsa, ec, rsa, ec]) {
      const token = await mintJwt(key, claims());
      const response = await h.request('GET', `${path}latest/?workflow_id=host-wf`, { key: token });
      expect(response.status, key.alg).toBe(200);
    }
    expect(jwks.fetches - fetchesBefore).toBeLessThanOrEqual(1);
    expect(jwks.fetches).toBe(1);
  });

  it('refetches the JWKS when a token names an unknown kid (key rotation)', async () => {
    const before = jwks.fetches;
    const rotated = await jwks.addKey('ES256', 'ec-2');
    const response = await h.request('GET', `${path}latest/?workflow_id=host-wf`, {
      key: await mintJwt(rotated, claims()),
    });
    expect(response.status).toBe(200);
    expect(jwks.fetches).toBe(before + 1);
    // A kid the JWKS does not have is a bad credential, not an outage.
    const unknown = await mintJwt({ ...rotated, kid: 'nobody' }, claims());
    refused(
      await h.request('GET', `${path}latest/?workflow_id=host-wf`, { key: unknown }),
      401,
      'authentication_failed',
    );
  });

  it('allows a small clock skew on exp, and refuses a token expired for longer with 401', async () => {
    const justExpired = await mintJwt(SECRET, claims({ expiresIn: -10 }));
    expect((await h.request('GET', `${path}latest/?workflow_id=host-wf`, { key: justExpired })).status).toBe(
      200,
    );
    const expired = await mintJwt(SECRET, claims({ expiresIn: -120 }));
    const response = await h.request('GET', `${path}latest/?workflow_id=host-wf`, { key: expired });
    refused(response, 401, 'authentication_failed');
    expect(response.json).toEqual({
      type: 'authentication_error',
      code: 'authentication_failed',
      detail: 'The JWT has expired.',
      attr: null,
    });
  });

  it('refuses a wrong audience or issuer, a missing exp or team_id, a bad signature and alg none with 401', async () => {
    const url = `${path}latest/?workflow_id=host-wf`;
    const wrongAudience = await h.request('GET', url, {
      key: await mintJwt(SECRET, claims({ aud: 'someone-else' })),
    });
    refused(wrongAudience, 401, 'authentication_failed');
    expect(wrongAudience.json.detail).toBe(`The JWT's "aud" claim is not "${AUDIENCE}".`);
    refused(
      await h.request('GET', url, { key: await mintJwt(SECRET, claims({ iss: 'https://evil.test' })) }),
      401,
      'authentication_failed',
    );
    refused(
      await h.request('GET', url, { key: await mintJwt(SECRET, claims({ expiresIn: undefined })) }),
      401,
      'authentication_failed',
    );
    const noTeam = await h.request('GET', url, {
      key: await mintJwt(SECRET, claims({ team_id: undefined })),
    });
    refused(noTeam, 401, 'authentication_failed');
    expect(noTeam.json.detail).toMatch(/team_id/);
    refused(
      await h.request('GET', url, { key: await mintJwt(`${SECRET}-not`, claims()) }),
      401,
      'authentication_failed',
    );
    const [, payload] = (await mintJwt(SECRET, claims())).split('.');
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${payload}.c2ln`;
    refused(await h.request('GET', url, { key: none }), 401, 'authentication_failed');
  });

  it('is read only: pushing or minting a stream token with a JWT is 403 and writes nothing', async () => {
    const token = await mintJwt(SECRET, claims());
    const body = uniqueSessionBody({ workflow_id: 'host-wf' });
    refused(await h.request('POST', path, { key: token, body }), 403, 'permission_denied');
    expect((await h.request('GET', `${path}${encodeURIComponent(body.session_id as string)}/`)).status).toBe(
      404,
    );
    refused(
      await h.request('POST', `/api/projects/${h.alice.teamId}/wizard/stream_tokens/`, { key: token }),
      403,
      'permission_denied',
    );
  });

  it('is bound to its team: another project is 404', async () => {
    const token = await mintJwt(SECRET, claims());
    refused(
      await h.request('GET', `${sessionsPath(h.bob.teamId)}latest/?workflow_id=host-wf`, { key: token }),
      404,
      'not_found',
    );
  });

  it('limited to workflow_ids: another workflow is 403, a list without workflow_id 403, a session elsewhere 404', async () => {
    const token = await mintJwt(rsa, claims({ workflow_ids: ['host-wf'] }));
    expect((await h.request('GET', `${path}latest/?workflow_id=host-wf`, { key: token })).status).toBe(200);
    const other = await h.request('GET', `${path}latest/?workflow_id=other-wf`, { key: token });
    refused(other, 403, 'permission_denied');
    expect(other.json.detail).toBe('This JWT does not cover workflow "other-wf".');
    refused(await h.request('GET', `${path}?workflow_id=other-wf`, { key: token }), 403, 'permission_denied');
    refused(await h.request('GET', path, { key: token }), 403, 'permission_denied');
    expect((await h.request('GET', `${path}?workflow_id=host-wf`, { key: token })).json.count).toBe(1);
    const elsewhere = (await h.request('GET', `${path}?workflow_id=other-wf`)).json.results[0].session_id;
    const hidden = await h.request('GET', `${path}${encodeURIComponent(elsewhere)}/`, { key: token });
    refused(hidden, 404, 'not_found');
    // As absent as an unknown id: the answer does not name the workflow the session belongs to.
    const unknown = await h.request('GET', `${path}no-such-session/`, { key: token });
    expect(hidden.json).toEqual(unknown.json);
    expect((await h.request('GET', `${path}${encodeURIComponent(sessionId)}/`, { key: token })).status).toBe(
      200,
    );
  });

  it('answers 503 with Retry-After when the JWKS cannot be fetched for an unknown kid', async () => {
    await jwks.close();
    const stranger = await mintJwt({ ...ec, kid: 'after-the-outage' }, claims());
    const response = await h.request('GET', `${path}latest/?workflow_id=host-wf`, { key: stranger });
    refused(response, 503, 'service_unavailable');
    expect(response.headers.get('retry-after')).toBe('5');
    // Keys already fetched keep working while the JWKS is down.
    const known = await h.request('GET', `${path}latest/?workflow_id=host-wf`, {
      key: await mintJwt(rsa, claims()),
    });
    expect(known.status).toBe(200);
  });
});

describe('host-app JWTs when not configured', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await startHarness('pglite');
  }, 60_000);
  afterAll(async () => {
    await h?.close();
  });

  it('are refused with 401', async () => {
    const token = await mintJwt(SECRET, { team_id: h.alice.teamId, expiresIn: 300 });
    const response = await h.request('GET', `${sessionsPath(h.alice.teamId)}latest/?workflow_id=w`, {
      key: token,
    });
    expect(response.status).toBe(401);
    expect(response.json.detail).toBe('JWT authentication is not configured.');
  });
});
