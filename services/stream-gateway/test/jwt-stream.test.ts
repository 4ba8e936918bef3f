import { JwksServer, mintJwt, type SigningKey } from '@wizard-stream/testkit';
import { loadWriteApiConfig, startWriteApi } from '@wizard-stream/write-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { openAndRead, openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

const SECRET = 'host-app-shared-secret-for-gateway-tests';
const AUDIENCE = 'wizard-stream';

/**
 * The gateway takes a host app's JWT like a stream token: it forwards the credential to write-api's
 * snapshot call, which verifies it (services/write-api/src/auth/jwt.ts), so one place holds the rule.
 */
describe('JWT stream auth through the gateway (pglite)', () => {
  let stack: TestStack;
  let gateway: RunningStreamGateway;
  let jwks: JwksServer;
  let key: SigningKey;
  const open: SseStream[] = [];
  const team = () => stack.teams[0];

  beforeAll(async () => {
    stack = await TestStack.start('pglite');
    jwks = await JwksServer.start();
    key = await jwks.addKey('ES256', 'gw-1');
    // The stack's write-api again, now with JWT auth configured.
    await stack.writeApi.close();
    stack.writeApi = await startWriteApi(
      loadWriteApiConfig({
        ...TestStack.writeApiEnv(stack.nats, stack.database),
        STREAM_JWT_SECRET: SECRET,
        STREAM_JWT_JWKS_URL: jwks.url,
        STREAM_JWT_AUDIENCE: AUDIENCE,
        MIGRATE_ON_START: '0',
      }),
      { database: stack.database },
    );
    gateway = await stack.startGateway();
  }, 60_000);
  afterAll(async () => {
    for (const stream of open) stream.close();
    await stack?.close();
    await jwks?.close();
  }, 30_000);

  it('streams the snapshot and live updates to a JWT given as ?token= (EventSource) or as Bearer', async () => {
    const token = await mintJwt(key, {
      team_id: team().teamId,
      aud: AUDIENCE,
      expiresIn: 60,
      workflow_ids: ['jwt-wf'],
    });
    await stack.upsert(team(), { sessionId: 'jwt-1', workflowId: 'jwt-wf', skillId: 'nextjs' });
    const url = `${stack.streamUrl(gateway.url, team().teamId, 'jwt-wf')}&token=${token}`;
    const viaQuery = await openStream(url);
    open.push(viaQuery);
    expect(viaQuery.status).toBe(200);
    expect(viaQuery.headers['content-type']).toBe('text/event-stream');
    await viaQuery.waitFor(() => viaQuery.latestVersion('jwt-1') === 1, { what: 'the snapshot' });
    const viaBearer = await openStream(stack.streamUrl(gateway.url, team().teamId, 'jwt-wf'), {
      authorization: `Bearer ${await mintJwt(SECRET, { team_id: team().teamId, aud: AUDIENCE, expiresIn: 60 })}`,
    });
    open.push(viaBearer);
    expect(viaBearer.status).toBe(200);
    await viaBearer.waitFor(() => viaBearer.latestVersion('jwt-1') === 1, { what: 'the snapshot' });
    await stack.upsert(team(), {
      sessionId: 'jwt-1',
      workflowId: 'jwt-wf',
      skillId: 'nextjs',
      runPhase: 'completed',
    });
    await viaQuery.waitFor(() => viaQuery.latestVersion('jwt-1') === 2, { what: 'the live update' });
    await viaBearer.waitFor(() => viaBearer.latestVersion('jwt-1') === 2, { what: 'the live update' });
  });

  it('refuses an expired JWT with 401, a workflow outside the claim with 403, another team with 404', async () => {
    const base = stack.streamUrl(gateway.url, team().teamId, 'jwt-wf');
    const expired = await mintJwt(SECRET, { team_id: team().teamId, aud: AUDIENCE, expiresIn: -600 });
    const cases: [string, number, string, string][] = [
      [base, 401, 'authentication_failed', expired],
      [
        base,
        401,
        'authentication_failed',
        await mintJwt(SECRET, { team_id: team().teamId, aud: 'other', expiresIn: 60 }),
      ],
      [
        stack.streamUrl(gateway.url, team().teamId, 'not-mine'),
        403,
        'permission_denied',
        await mintJwt(key, {
          team_id: team().teamId,
          aud: AUDIENCE,
          expiresIn: 60,
          workflow_ids: ['jwt-wf'],
        }),
      ],
      [
        stack.streamUrl(gateway.url, stack.teams[1].teamId, 'jwt-wf'),
        404,
        'not_found',
        await mintJwt(key, { team_id: team().teamId, aud: AUDIENCE, expiresIn: 60 }),
      ],
    ];
    for (const [url, status, code, token] of cases) {
      const refused = await openAndRead(`${url}&token=${token}`);
      expect(refused.status, code).toBe(status);
      expect(refused.headers['content-type']).toMatch(/^application\/json/);
      expect(JSON.parse(refused.body)).toMatchObject({ code, attr: null });
    }
    expect(gateway.state.registry.size).toBe(open.filter((stream) => !stream.closed).length);
  });
});
