import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningStreamGateway } from '../src/index.js';
import { openStream, type SseStream } from './support/sse-client.js';
import { TestStack } from './support/stack.js';

/** Subject routing and team isolation, on the embedded PGlite dialect. */
describe('routing and isolation (pglite)', () => {
  let stack: TestStack;
  let gateway: RunningStreamGateway;
  const open: SseStream[] = [];

  beforeAll(async () => {
    stack = await TestStack.start('pglite');
    gateway = await stack.startGateway();
  }, 60_000);

  afterAll(async () => {
    for (const stream of open) stream.close();
    await stack?.close();
  }, 30_000);

  async function connect(teamIndex: 0 | 1, workflowId: string, skillId?: string): Promise<SseStream> {
    const team = stack.teams[teamIndex];
    const stream = await openStream(stack.streamUrl(gateway.url, team.teamId, workflowId, skillId), {
      authorization: `Bearer ${team.apiKey}`,
    });
    expect(stream.status).toBe(200);
    open.push(stream);
    return stream;
  }

  it('a workflow-only stream sees every skill of its workflow, including skills containing dots', async () => {
    const stream = await connect(0, 'wf.all');
    const team = stack.teams[0];
    const skills = ['plain', 'with.dot', 'two.dots.here', '-_.-'];
    for (const [index, skillId] of skills.entries()) {
      await stack.upsert(team, { sessionId: `all-${index}`, workflowId: 'wf.all', skillId });
    }
    await stream.waitFor(() => new Set(stream.sessions.map((s) => s.sessionId)).size === skills.length, {
      timeoutMs: 2000,
      what: 'a frame for every skill',
    });
    expect(new Set(stream.sessions.map((s) => s.skillId))).toEqual(new Set(skills));
    expect(stream.sessions.every((s) => s.workflowId === 'wf.all' && s.teamId === team.teamId)).toBe(true);
  });

  it('a stream on workflow `a` never sees workflow `a.b`, nor `a` skill `b.c` the exact stream of `a.b`/`c`', async () => {
    const team = stack.teams[0];
    const workflowA = await connect(0, 'a');
    const exactAbC = await connect(0, 'a.b', 'c');
    const exactABc = await connect(0, 'a', 'b.c');
    // Encoded naively, these would all be the subject wizard.<team>.a.b.c.
    await stack.upsert(team, { sessionId: 'in-a.b', workflowId: 'a.b', skillId: 'c' });
    await stack.upsert(team, { sessionId: 'in-a', workflowId: 'a', skillId: 'b.c' });
    await stack.upsert(team, { sessionId: 'in-a-other', workflowId: 'a', skillId: 'other' });

    await workflowA.waitFor(() => workflowA.sessions.some((s) => s.sessionId === 'in-a-other'), {
      timeoutMs: 2000,
      what: 'the last update of workflow a',
    });
    expect(workflowA.sessions.map((s) => s.sessionId).sort()).toEqual(['in-a', 'in-a-other']);

    // The marker after the foreign update: once it is here, the foreign one would have been too.
    await stack.upsert(team, { sessionId: 'in-a.b', workflowId: 'a.b', skillId: 'c' });
    await exactAbC.waitFor(() => exactAbC.latestVersion('in-a.b') === 2, { timeoutMs: 2000, what: 'a.b/c' });
    expect(exactAbC.sessions.map((s) => s.sessionId)).toEqual(['in-a.b', 'in-a.b']);

    await stack.upsert(team, { sessionId: 'in-a', workflowId: 'a', skillId: 'b.c' });
    await exactABc.waitFor(() => exactABc.latestVersion('in-a') === 2, { timeoutMs: 2000, what: 'a/b.c' });
    expect(exactABc.sessions.every((s) => s.sessionId === 'in-a' && s.skillId === 'b.c')).toBe(true);
  });

  it("never delivers another team's frames, whatever the ids", async () => {
    const [one, two] = stack.teams;
    const ids: Array<[string, string]> = [
      ['iso', 'skill'],
      ['iso', 'sk.ill'],
      ['iso.x', 'y'],
      ['-', '_'],
      ['.', '..'],
    ];
    const streams = new Map<string, SseStream>();
    for (const [workflowId, skillId] of ids) {
      streams.set(`${workflowId}/${skillId}`, await connect(1, workflowId, skillId));
      streams.set(`${workflowId}/*`, streams.get(`${workflowId}/*`) ?? (await connect(1, workflowId)));
    }
    for (const [index, [workflowId, skillId]] of ids.entries()) {
      await stack.upsert(one, { sessionId: `team-one-${index}`, workflowId, skillId });
    }
    // Team two's own markers, published after team one's updates on the same subjects.
    for (const [index, [workflowId, skillId]] of ids.entries()) {
      await stack.upsert(two, { sessionId: `team-two-${index}`, workflowId, skillId });
    }
    for (const [index, [workflowId, skillId]] of ids.entries()) {
      for (const key of [`${workflowId}/${skillId}`, `${workflowId}/*`]) {
        const stream = streams.get(key) as SseStream;
        await stream.waitFor(() => stream.sessions.some((s) => s.sessionId === `team-two-${index}`), {
          timeoutMs: 2000,
          what: `team two's marker on ${key}`,
        });
      }
    }
    for (const [key, stream] of streams) {
      expect(
        stream.sessions.filter((s) => s.teamId !== two.teamId || s.sessionId.startsWith('team-one')),
        key,
      ).toEqual([]);
    }
  });
});
