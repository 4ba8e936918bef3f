import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { latestSessionUrl, sessionDtoSchema, sessionsUrl } from '@wizard-stream/contracts';
import { type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import { createTestDatabase, NatsServer, type TestDatabase } from '@wizard-stream/testkit';
import { loadWriteApiConfig, type RunningWriteApi, startWriteApi } from '@wizard-stream/write-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The published CLI's own push code, not a re-implementation: `TaskStreamPush` and
 * `PostHogDestination` from @posthog/wizard's dist. The chunk's hashed file name changes between
 * releases, so it is found by globbing. It imports only small modules (file logging is off unless the
 * CLI configures it), so loading it does not start the CLI.
 */
interface WizardStore {
  session: {
    skillId: string | null;
    runPhase: 'idle' | 'running' | 'completed' | 'error';
    pendingQuestion: PendingQuestion | null;
    outroData: unknown;
  };
  tasks: { label: string; status: 'pending' | 'in_progress' | 'completed' | 'skipped' }[];
  eventPlan: { name: string; description: string }[];
  handoffText: string | null;
  subscribe(listener: () => void): () => void;
  setEventPlan(events: { name: string; description: string }[]): void;
}
interface PendingQuestion {
  id: string;
  askedAt?: string;
  questions: { prompt: string; sensitive?: boolean }[];
}
interface TaskStreamPushInstance {
  readonly sessionId: string;
  attach(): void;
  push(): Promise<void>;
  shutdown(timeoutMs?: number): Promise<void>;
}
interface TaskStreamModule {
  TaskStreamPush: new (options: {
    store: WizardStore;
    programId: string;
    destinations: unknown[];
  }) => TaskStreamPushInstance;
  PostHogDestination: new (options: {
    getCredentials: () => { host: { apiHost: string }; projectId: number; accessToken: string } | null;
    onError?: (error: Error) => void;
  }) => unknown;
}

async function loadWizardTaskStream(): Promise<TaskStreamModule> {
  const packageDir = dirname(createRequire(import.meta.url).resolve('@posthog/wizard/package.json'));
  const distDir = join(packageDir, 'dist');
  const chunk = readdirSync(distDir).find((name) => /^task-stream-[\w-]+\.js$/.test(name));
  if (!chunk) throw new Error(`no task-stream-*.js chunk in ${distDir}`);
  return (await import(pathToFileURL(join(distDir, chunk)).href)) as TaskStreamModule;
}

/** The slice of the CLI's store that TaskStreamPush reads, with its subscribe/notify contract. */
function createStore(skillId: string): WizardStore & { notify(): void } {
  const listeners = new Set<() => void>();
  const store = {
    session: {
      skillId,
      runPhase: 'idle' as WizardStore['session']['runPhase'],
      pendingQuestion: null,
      outroData: null,
    },
    tasks: [] as WizardStore['tasks'],
    eventPlan: [] as WizardStore['eventPlan'],
    handoffText: null as string | null,
    subscribe(listener: () => void) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    setEventPlan(events: WizardStore['eventPlan']) {
      store.eventPlan = events;
      store.notify();
    },
    notify() {
      for (const listener of listeners) listener();
    },
  };
  return store as WizardStore & { notify(): void };
}

const SECRET_PROMPT = 'Paste your PostHog personal API key (phx_…)';
const HANDOFF = '  ## Setup report\n\n    indented code stays indented\n- Installed posthog-js\n';

describe('the published @posthog/wizard CLI pushing to write-api (postgres)', () => {
  let database: TestDatabase;
  let nats: NatsServer;
  let api: RunningWriteApi;
  let member: SeededMember;
  let wizard: TaskStreamModule;

  beforeAll(async () => {
    [database, nats, wizard] = await Promise.all([
      createTestDatabase('postgres'),
      NatsServer.start(),
      loadWizardTaskStream(),
    ]);
    api = await startWriteApi(
      loadWriteApiConfig({ NATS_URL: nats.url, PORT: '0', LOG_LEVEL: 'silent', MIGRATE_ON_START: '0' }),
      { database },
    );
    member = await seedTeamWithMember(database.db, {
      teamName: 'cli',
      email: 'cli@example.test',
      firstName: 'Cli',
    });
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await nats?.stop();
    await database?.dispose();
  });

  async function stored(sessionId: string) {
    const response = await fetch(`${sessionsUrl(api.url, member.teamId)}${encodeURIComponent(sessionId)}/`, {
      headers: { authorization: `Bearer ${member.apiKey}` },
    });
    expect(response.status).toBe(200);
    return sessionDtoSchema.parse(await response.json());
  }

  it('stores a whole run — running, task updates, questions, completed with a handoff report', async () => {
    const errors: Error[] = [];
    const store = createStore('nextjs');
    const destination = new wizard.PostHogDestination({
      getCredentials: () => ({
        host: { apiHost: api.url },
        projectId: member.teamId,
        accessToken: member.apiKey,
      }),
      onError: (error) => errors.push(error),
    });
    const push = new wizard.TaskStreamPush({
      store,
      programId: 'posthog-integration',
      destinations: [destination],
    });
    push.attach();
    // The CLI's own session id: program, skill and a second-precision start time (contains ':').
    expect(push.sessionId).toMatch(/^posthog-integration-nextjs-\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

    // Running, with a task list: a phase change pushes at once.
    store.session.runPhase = 'running';
    store.tasks = [
      { label: 'Install posthog-js', status: 'in_progress' },
      { label: 'Add the provider', status: 'pending' },
    ];
    store.notify();
    await push.push();
    const running = await stored(push.sessionId);
    expect(running).toMatchObject({
      workflow_id: 'posthog-integration',
      skill_id: 'nextjs',
      run_phase: 'running',
      created_by: { id: member.userId, first_name: 'Cli', email: 'cli@example.test' },
      tasks: [
        { id: '0', title: 'Install posthog-js', status: 'in_progress' },
        { id: '1', title: 'Add the provider', status: 'pending' },
      ],
      pending_input: null,
      handoff_text: null,
      is_stale: false,
    });

    // Task updates ("skipped" is the CLI's own status; it maps it to completed).
    store.tasks = [
      { label: 'Install posthog-js', status: 'completed' },
      { label: 'Add the provider', status: 'skipped' },
      { label: 'Capture events', status: 'in_progress' },
    ];
    store.notify();
    await push.push();
    const updated = await stored(push.sessionId);
    expect(updated.tasks.map((task) => task.status)).toEqual(['completed', 'completed', 'in_progress']);
    expect(updated.version).toBeGreaterThan(running.version);

    // An ordinary question keeps its prompts.
    store.session.pendingQuestion = {
      id: 'q-framework',
      askedAt: '2026-01-02T03:04:05.000Z',
      questions: [{ prompt: 'Use the app router?' }],
    };
    store.notify();
    await push.push();
    expect((await stored(push.sessionId)).pending_input).toEqual({
      id: 'q-framework',
      asked_at: '2026-01-02T03:04:05.000Z',
      question_count: 1,
      sensitive: false,
      prompts: ['Use the app router?'],
    });

    // A sensitive question: only the fact that input is needed is stored, never the prompt.
    store.session.pendingQuestion = {
      id: 'q-secret',
      askedAt: '2026-01-02T03:05:00.000Z',
      questions: [{ prompt: SECRET_PROMPT, sensitive: true }, { prompt: 'Region?' }],
    };
    store.notify();
    await push.push();
    const asking = await stored(push.sessionId);
    expect(asking.pending_input).toEqual({
      id: 'q-secret',
      asked_at: '2026-01-02T03:05:00.000Z',
      question_count: 2,
      sensitive: true,
    });
    const row = await database.db
      .selectFrom('wizard_sessions')
      .select((eb) => eb.cast<string>('pending_input', 'text').as('pending_input'))
      .where('session_id', '=', push.sessionId)
      .executeTakeFirstOrThrow();
    expect(row.pending_input).not.toContain('phx_');
    expect(row.pending_input).not.toContain('prompts');

    // The question is answered and the agent writes its event plan.
    store.session.pendingQuestion = null;
    store.setEventPlan([{ name: 'user_signed_up', description: 'A new account was created' }]);
    await push.push();
    const planned = await stored(push.sessionId);
    expect(planned.pending_input).toBeNull();
    expect(planned.event_plan).toEqual({
      events: [{ name: 'user_signed_up', description: 'A new account was created' }],
    });

    // Completed with the handoff report; shutdown() sends the terminal push.
    store.tasks = store.tasks.map((task) => ({ ...task, status: 'completed' }));
    store.handoffText = HANDOFF;
    store.session.runPhase = 'completed';
    store.session.outroData = { kind: 'success' };
    await push.shutdown(10_000);

    const completed = await stored(push.sessionId);
    expect(completed).toMatchObject({
      session_id: push.sessionId,
      run_phase: 'completed',
      handoff_text: HANDOFF,
      event_plan: { events: [{ name: 'user_signed_up', description: 'A new account was created' }] },
      error: null,
      pending_input: null,
      is_stale: false,
    });
    expect(completed.tasks.every((task) => task.status === 'completed')).toBe(true);
    expect(completed.version).toBeGreaterThan(planned.version);
    expect(errors).toEqual([]);

    // The gateway's snapshot call sees the same run.
    const latest = await fetch(latestSessionUrl(api.url, member.teamId, 'posthog-integration', 'nextjs'), {
      headers: { authorization: `Bearer ${member.apiKey}` },
    });
    expect(latest.status).toBe(200);
    expect(sessionDtoSchema.parse(await latest.json())).toEqual(completed);
    const count = await database.db
      .selectFrom('wizard_sessions')
      .select((eb) => eb.fn.countAll<number>().as('rows'))
      .executeTakeFirstOrThrow();
    expect(Number(count.rows)).toBe(1);
  }, 60_000);
});
