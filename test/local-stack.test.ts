import { spawnSync } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { connect, headers as natsHeaders } from '@nats-io/transport-node';
import { BusConnection, subscribeSessions } from '@wizard-stream/bus';
import { createPushClient, type Session, type Subscription, subscribe } from '@wizard-stream/client';
import { apiErrors, MAX_BODY_BYTES, NATS_HEADERS, sessionSubject } from '@wizard-stream/contracts';
import { until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Exchange, exchange } from './src/exchange.js';
import { type LocalStack, startLocalStack } from './src/local-stack.js';
import { commandLineOf, isAlive, killQuietly, processesInGroup } from './src/processes.js';
import { required } from './src/required.js';
import { listeningOnPort } from './src/tcp.js';

/**
 * `npm start` in a copy of the repository, the way a newcomer runs it: it comes up, writes its
 * credentials, carries a push through the edge to a stream through the edge, and Ctrl-C stops it all.
 */
describe('npm start (local stack)', () => {
  let stack: LocalStack;
  let subscription: Subscription | undefined;
  let tokenFromFirstStart: string | undefined;

  beforeAll(async () => {
    stack = await startLocalStack(stackEnv);
  }, 150_000);

  afterAll(async () => {
    subscription?.close();
    await subscription?.closed;
    await stack?.dispose();
  }, 30_000);

  // The refusals below are many from one address: the failed-auth throttle has its own tests.
  const stackEnv = { HEARTBEAT_MS: '1000', STREAM_MAX_DURATION_MS: '60000', AUTH_FAILURES_PER_MIN: '1000' };

  it('writes a valid .data/credentials.json and says what runs where', async () => {
    const { credentials } = stack;
    expect(credentials.url).toBe(stack.url);
    expect(credentials.write_api).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(credentials.gateways).toHaveLength(2);
    for (const gateway of credentials.gateways) expect(gateway).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(new Set(credentials.gateways).size).toBe(2);
    expect(credentials.teams).toHaveLength(2);
    expect(credentials.teams[0]?.id).not.toBe(credentials.teams[1]?.id);
    for (const team of credentials.teams) expect(team.api_key).toMatch(/^wsk_/);
    for (const service of [credentials.write_api, ...credentials.gateways]) {
      expect((await fetch(`${service}/healthz`)).status).toBe(200);
      expect(stack.output()).toContain(service);
    }
    expect(stack.output()).toContain(stack.url);
    // The copy had no dashboard build: npm start made one.
    expect(stack.output()).toContain('dashboard built');
    const dashboard = await fetch(`${stack.url}/`);
    expect(dashboard.status).toBe(200);
    expect(await dashboard.text()).toContain('wizard-stream');
  });

  it('carries a push through the edge to a stream through the edge', async () => {
    const team = required(stack.credentials.teams[0], 'team 1');
    const otherTeam = required(stack.credentials.teams[1], 'team 2');
    const push = createPushClient({ baseUrl: stack.url, projectId: team.id, apiKey: team.api_key });
    const received: Session[] = [];
    subscription = subscribe({
      baseUrl: stack.url,
      projectId: team.id,
      workflowId: 'e2e.flow',
      credentials: { getToken: async () => (await push.mintStreamToken()).token },
      onSession: (session) => received.push(session),
    });
    await until(() => subscription?.state === 'open', { timeoutMs: 10_000, what: 'the stream to open' });

    const started = new Date().toISOString();
    const sent = await push.upsert({
      session_id: 'e2e-session',
      workflow_id: 'e2e.flow',
      skill_id: 'setup',
      started_at: started,
      run_phase: 'running',
      tasks: [{ id: 't1', title: 'Install the SDK', status: 'in_progress' }],
    });
    expect(sent.version).toBe(1);
    await until(() => received.some((session) => session.version === 1), {
      timeoutMs: 2000,
      what: 'the pushed session on the stream within 2 s',
    });
    await push.upsert({
      session_id: 'e2e-session',
      workflow_id: 'e2e.flow',
      skill_id: 'setup',
      started_at: started,
      run_phase: 'completed',
      tasks: [{ id: 't1', title: 'Install the SDK', status: 'completed' }],
      handoff_text: '# Done',
    });
    await until(() => received.some((session) => session.version === 2), {
      timeoutMs: 2000,
      what: 'the second update within 2 s',
    });
    expect(received.at(-1)?.run_phase).toBe('completed');
    expect(received.map((session) => session.version)).toEqual([1, 2]);

    // The other team's key cannot read this project through the edge.
    const foreign = await fetch(`${stack.url}/api/projects/${team.id}/wizard/sessions/e2e-session/`, {
      headers: { Authorization: `Bearer ${otherTeam.api_key}` },
    });
    expect(foreign.status).toBe(404);
    tokenFromFirstStart = (await push.mintStreamToken()).token;
  }, 30_000);

  it('refuses every value of .data/secrets.json at the edge, as Bearer and as ?token=, for every team', async () => {
    const secrets = JSON.parse(await readFile(join(stack.directory, '.data', 'secrets.json'), 'utf8'));
    const values: string[] = [];
    const collect = (value: unknown): void => {
      if (typeof value === 'string') values.push(value);
      else if (value && typeof value === 'object') for (const inner of Object.values(value)) collect(inner);
    };
    collect(secrets);
    expect(values.length).toBeGreaterThanOrEqual(2);
    for (const secret of values) {
      for (const team of stack.credentials.teams) {
        const list = `${stack.url}/api/projects/${team.id}/wizard/sessions/?workflow_id=e2e.flow`;
        const stream = `${stack.url}/api/projects/${team.id}/wizard/sessions/stream/?workflow_id=e2e.flow`;
        const attempts = [
          fetch(list, { headers: { authorization: `Bearer ${secret}` } }),
          fetch(`${list}&token=${encodeURIComponent(secret)}`),
          fetch(stream, { headers: { accept: 'text/event-stream', authorization: `Bearer ${secret}` } }),
          fetch(`${stream}&token=${encodeURIComponent(secret)}`, {
            headers: { accept: 'text/event-stream' },
          }),
        ];
        for (const response of await Promise.all(attempts)) {
          expect(response.status, `${response.url} with a secret of .data/secrets.json`).toBe(401);
          await response.arrayBuffer();
        }
      }
    }
  });

  it('passes docs/configuration.md settings through: HEARTBEAT_MS=1000 reaches the gateways', async () => {
    const team = required(stack.credentials.teams[0], 'team 1');
    const controller = new AbortController();
    const response = await fetch(
      `${stack.url}/api/projects/${team.id}/wizard/sessions/stream/?workflow_id=quiet`,
      {
        headers: { Accept: 'text/event-stream', Authorization: `Bearer ${team.api_key}` },
        signal: controller.signal,
      },
    );
    expect(response.status).toBe(200);
    const reader = required(response.body, 'a stream body').getReader();
    const decoder = new TextDecoder();
    const openedAt = Date.now();
    let received = '';
    try {
      while (!received.includes(': ping')) {
        const { done, value } = await reader.read();
        if (done) break;
        received += decoder.decode(value, { stream: true });
      }
    } finally {
      controller.abort();
    }
    expect(received).toContain(': ping');
    // The production default is 15 s: a ping this early shows the setting arrived.
    expect(Date.now() - openedAt).toBeLessThan(5000);
  }, 15_000);

  it('delivers a session as large as the 1 MiB body limit allows: its NATS message fits too', async () => {
    const team = required(stack.credentials.teams[1], 'team 2');
    const push = createPushClient({ baseUrl: stack.url, projectId: team.id, apiKey: team.api_key });
    const received: Session[] = [];
    const large = subscribe({
      baseUrl: stack.url,
      projectId: team.id,
      workflowId: 'e2e.large',
      credentials: { apiKey: team.api_key },
      onSession: (session) => received.push(session),
    });
    try {
      await until(() => large.state === 'open', { timeoutMs: 10_000, what: 'the stream to open' });
      const body = {
        session_id: 'large-session',
        workflow_id: 'e2e.large',
        skill_id: 'setup',
        started_at: new Date().toISOString(),
        run_phase: 'running' as const,
        tasks: [],
        event_plan: { blob: '' },
      };
      // Just under the limit: the DTO and the message headers then take the message past 1 MiB.
      body.event_plan.blob = 'x'.repeat(1024 * 1024 - 16 - JSON.stringify(body).length);
      expect(JSON.stringify(body).length).toBe(1024 * 1024 - 16);
      const sent = await push.upsert(body);
      await until(() => received.some((session) => session.version === sent.version), {
        timeoutMs: 5000,
        what: 'the 1 MiB session on the stream',
      });
      expect(received.at(-1)?.event_plan).toEqual(body.event_plan);
    } finally {
      large.close();
      await large.closed;
    }
  }, 30_000);

  it("refuses the forged publisher and the sniffing subscriber on its nats-server; team 2's stream gets only real updates", async () => {
    const team = required(stack.credentials.teams[1], 'team 2');
    const natsUrl = required(
      /nats-server\s+(nats:\/\/127\.0\.0\.1:\d+)/.exec(stack.output())?.[1],
      'the NATS URL',
    );
    const secrets = JSON.parse(await readFile(join(stack.directory, '.data', 'secrets.json'), 'utf8'));
    const received: Session[] = [];
    const stream = subscribe({
      baseUrl: stack.url,
      projectId: team.id,
      workflowId: 'relay',
      credentials: { apiKey: team.api_key },
      onSession: (session) => received.push(session),
    });
    const forger = new BusConnection({
      url: natsUrl,
      name: 'e2e-forger',
      user: 'stream-gateway',
      password: secrets.nats_gateway_password,
    });
    const sniffer = new BusConnection({
      url: natsUrl,
      name: 'e2e-sniffer',
      user: 'write-api',
      password: secrets.nats_write_api_password,
    });
    try {
      await until(() => stream.state === 'open', { timeoutMs: 10_000, what: 'the stream to open' });
      // Anyone on the network without a login.
      await expect(connect({ servers: natsUrl, maxReconnectAttempts: 0 })).rejects.toThrow(/Authorization/);
      // A leaked gateway login cannot publish: the forged frame of issue 10.
      const headers = natsHeaders();
      headers.set(NATS_HEADERS.sessionId, 'forged');
      headers.set(NATS_HEADERS.version, '999999');
      const forged = { session_id: 'forged', workflow_id: 'relay', skill_id: 's', version: 999999 };
      (await forger.ready()).publish(sessionSubject(team.id, 'relay', 's'), JSON.stringify(forged), {
        headers,
      });
      await until(() => forger.refusals().publish === 1, { what: 'the forged publish to be refused' });
      // A leaked write-api login cannot read every team's sessions.
      await subscribeSessions(sniffer, 'wizard.>', () => {});
      await until(() => sniffer.refusals().subscribe === 1, {
        what: 'the sniffing subscription to be refused',
      });

      const push = createPushClient({ baseUrl: stack.url, projectId: team.id, apiKey: team.api_key });
      await push.upsert({
        session_id: 'real',
        workflow_id: 'relay',
        skill_id: 's',
        started_at: new Date().toISOString(),
        run_phase: 'running',
        tasks: [],
      });
      await until(() => received.some((session) => session.session_id === 'real'), {
        timeoutMs: 5000,
        what: 'the real update on the stream',
      });
      expect(received.map((session) => [session.session_id, session.version])).toEqual([['real', 1]]);
    } finally {
      stream.close();
      await stream.closed;
      await forger.close();
      await sniffer.close();
    }
  }, 30_000);

  it("answers ten 2 MiB bodies through the edge with write-api's 413, and the next push on the same connection succeeds", async () => {
    const team = required(stack.credentials.teams[0], 'team 1');
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const path = `/api/projects/${team.id}/wizard/sessions/`;
    const headers = { Authorization: `Bearer ${team.api_key}`, 'Content-Type': 'application/json' };
    try {
      const oversize = Buffer.from(JSON.stringify({ session_id: 'big', blob: 'x'.repeat(2 * 1024 * 1024) }));
      const answers: Exchange[] = [];
      for (let attempt = 0; attempt < 10; attempt++) {
        answers.push(await exchange(agent, stack.url, { method: 'POST', path, headers, body: oversize }));
      }
      expect(answers.map((answer) => answer.status)).toEqual(Array(10).fill(413));
      for (const answer of answers) {
        expect(JSON.parse(answer.body)).toEqual(apiErrors.payloadTooLarge(MAX_BODY_BYTES).body);
      }
      const next = await exchange(agent, stack.url, {
        method: 'POST',
        path,
        headers,
        body: Buffer.from(
          JSON.stringify({
            session_id: 'after-413',
            workflow_id: 'e2e.limits',
            skill_id: 'setup',
            started_at: new Date().toISOString(),
            run_phase: 'running',
            tasks: [],
          }),
        ),
      });
      expect(next.status).toBe(201);
      // One connection for all eleven: no answer broke it.
      const ports = new Set([...answers, next].map((answer) => answer.localPort));
      expect(answers[0]?.localPort).toBeGreaterThan(0);
      expect([...ports]).toEqual([answers[0]?.localPort]);
    } finally {
      agent.destroy();
    }
  }, 30_000);

  it('routes only the API and the dashboard: /metrics, /readyz and /healthz are 404 at the edge', async () => {
    for (const path of ['/metrics', '/readyz', '/healthz']) {
      expect((await fetch(`${stack.credentials.write_api}${path}`)).status, `write-api ${path}`).toBe(200);
      const atEdge = await fetch(`${stack.url}${path}`);
      expect(atEdge.status, `edge ${path}`).toBe(404);
      expect(await atEdge.json()).toMatchObject({ code: 'not_found' });
    }
  });

  it('refuses to start with a clear message when WIZARD_PORT is taken', () => {
    const second = spawnSync('npm', ['start'], {
      cwd: stack.directory,
      env: { ...process.env, WIZARD_PORT: new URL(stack.url).port },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(second.status).toBe(1);
    expect(second.stdout + second.stderr).toContain(`port ${new URL(stack.url).port} is taken`);
  }, 70_000);

  it('stops every process it started on Ctrl-C', async () => {
    subscription?.close();
    await subscription?.closed;
    const started = stack.descendants();
    const commands = started.map(commandLineOf).join('\n');
    expect(commands).toContain('nats-server');
    expect(commands).toContain('write-api/src/main.ts');
    expect(commands.match(/stream-gateway\/src\/main\.ts/g)).toHaveLength(2);

    await stack.interrupt();
    const survivors = await until(
      () => {
        const alive = started.filter(isAlive);
        return alive.length === 0 ? [] : undefined;
      },
      {
        timeoutMs: 15_000,
        what: `every child to exit (left: ${started.filter(isAlive).map(commandLineOf).join('; ')})`,
      },
    ).catch(() => started.filter(isAlive).map((pid) => `${pid} ${commandLineOf(pid)}`));
    expect(survivors).toEqual([]);
    expect(stack.output()).toContain('[stack] stopped');
  }, 30_000);

  it('a second start reuses .data (same keys, sessions and token secret) and SIGTERM stops it', async () => {
    const first = stack;
    await first.dispose({ keepDirectory: true });
    stack = await startLocalStack(stackEnv, { directory: first.directory });
    expect(stack.output()).toContain('reusing');
    expect(stack.credentials.teams).toEqual(first.credentials.teams);
    const team = required(stack.credentials.teams[0], 'team 1');
    const push = createPushClient({ baseUrl: stack.url, projectId: team.id, apiKey: team.api_key });
    const latest = await push.latest('e2e.flow');
    expect(latest?.session_id).toBe('e2e-session');
    expect(latest?.version).toBe(2);
    // A stream token minted before the restart still works: the signing secret is kept in .data.
    expect(tokenFromFirstStart).toBeDefined();
    const stream = await fetch(
      `${stack.url}/api/projects/${team.id}/wizard/sessions/stream/?workflow_id=e2e.flow&token=${tokenFromFirstStart}`,
      { headers: { Accept: 'text/event-stream' } },
    );
    expect(stream.status).toBe(200);
    await stream.body?.cancel();

    // SIGTERM (a process manager's stop) ends every child too.
    const started = stack.descendants();
    expect(started.map(commandLineOf).join('\n')).toContain('write-api/src/main.ts');
    await stack.terminate();
    await until(() => started.every((pid) => !isAlive(pid)), {
      timeoutMs: 15_000,
      what: 'every child to exit after SIGTERM',
    });
    expect(stack.output()).toContain('[stack] stopped');
  }, 150_000);

  it('seeds new teams when the PGlite data behind the saved keys is gone', async () => {
    const previous = stack;
    await previous.dispose({ keepDirectory: true });
    await rm(join(previous.directory, '.data', 'pglite'), { recursive: true, force: true });
    stack = await startLocalStack(stackEnv, { directory: previous.directory });
    expect(stack.output()).toContain('[stack] seeded two teams');
    const team = required(stack.credentials.teams[0], 'team 1');
    expect(team.api_key).not.toBe(required(previous.credentials.teams[0], 'team 1 before').api_key);
    const push = createPushClient({ baseUrl: stack.url, projectId: team.id, apiKey: team.api_key });
    const session = await push.upsert({
      session_id: 'after-reset',
      workflow_id: 'e2e.flow',
      skill_id: 'setup',
      started_at: new Date().toISOString(),
      run_phase: 'running',
      tasks: [],
    });
    expect(session.version).toBe(1);
  }, 150_000);

  /** The processes and ports of the running stack, and a check that none of them is left. */
  function footprint(running: LocalStack) {
    const natsPort = Number(running.output().match(/nats-server\s+nats:\/\/127\.0\.0\.1:(\d+)/)?.[1]);
    const ports = [running.url, running.credentials.write_api, ...running.credentials.gateways]
      .map((url) => Number(new URL(url).port))
      .concat(natsPort);
    for (const port of ports) expect(listeningOnPort(port), `port ${port} in use before the stop`).toBe(true);
    const started = [running.pid, ...running.descendants()];
    expect(started.map(commandLineOf).join('\n')).toContain('nats-server');
    const left = () => ({
      processes: started.filter(isAlive),
      groups: started.filter((pgid) => processesInGroup(pgid).length > 0),
      ports: ports.filter(listeningOnPort),
    });
    return {
      started,
      /** 'none' once no process, process group or port of the stack is left; what is left after 15 s. */
      leftover: () =>
        until(
          () => {
            const now = left();
            return now.processes.length + now.groups.length + now.ports.length === 0 ? 'none' : undefined;
          },
          { timeoutMs: 15_000, intervalMs: 100, what: 'the stack to stop' },
        ).catch(() => {
          const now = left();
          return `processes ${now.processes.map((pid) => `${pid} ${commandLineOf(pid)}`).join('; ')}; groups ${now.groups.join(', ')}; ports ${now.ports.join(', ')}`;
        }),
    };
  }

  it('with its output pipes closed, SIGTERM to its process group stops every process and frees every port within 15 s', async () => {
    const { leftover } = footprint(stack);
    // The terminal went away: whatever the stack writes from now on meets a closed pipe.
    stack.closeOutput();
    stack.signalGroup('SIGTERM');
    expect(await leftover()).toBe('none');
  }, 30_000);

  it('with its output pipes closed, SIGINT twice to the supervisor alone stops every process and frees every port within 15 s', async () => {
    const previous = stack;
    await previous.dispose({ keepDirectory: true });
    stack = await startLocalStack(stackEnv, { directory: previous.directory });
    const { started, leftover } = footprint(stack);
    const supervisor = required(
      // The node process itself, not the shell npm runs it with (`sh -c node scripts/start.mjs`).
      started.find((pid) => /^(\S*\/)?node .*scripts\/start\.mjs/.test(commandLineOf(pid))),
      'the supervisor process',
    );
    stack.closeOutput();
    killQuietly(supervisor, 'SIGINT');
    killQuietly(supervisor, 'SIGINT');
    expect(await leftover()).toBe('none');
  }, 150_000);
});
