import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createPushClient, type PushClient, type UpsertSessionInput } from '@wizard-stream/client';
import type { TaskStatus } from '@wizard-stream/contracts';
import { until } from '@wizard-stream/testkit';
import type { Page, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, launchChromium } from './src/browser.js';
import {
  clickRow,
  detailShows,
  horizontalOverflow,
  type RecordedPage,
  recordConnectionStates,
  rowFor,
  rowIds,
  rowShowsVersion,
} from './src/dashboard-page.js';
import { type LocalStack, printedGateways, REPO_ROOT, startLocalStack } from './src/local-stack.js';
import { isAlive } from './src/processes.js';
import { required } from './src/required.js';
import { establishedConnectionsOnPort } from './src/tcp.js';

const WORKFLOW = 'posthog-integration';
const PAGING_WORKFLOW = 'paging-flow';
const STALE_WORKFLOW = 'stale-flow';
/** Short, so the staleness test sees a run go stale live; other running runs are pushed again when it matters. */
const STALE_AFTER_MS = 15_000;
const ARTIFACTS = join(REPO_ROOT, 'test', 'artifacts');
const WIDE = { width: 1440, height: 900 };
const NARROW = { width: 320, height: 800 };

const minutesAgo = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
/** What the page shows for a start time: the browser runs on this machine's time zone, as Node does. */
const localTimestamp = (iso: string) => new Date(iso).toLocaleString('sv-SE');

const SECRET_PROMPT = 'Paste your PostHog personal API key phx_secret_123';
const HOSTILE_ID = '<img/src=x/onerror=window.__pwned=6>';

const HANDOFF = [
  '## PostHog is set up',
  '',
  'The wizard installed **posthog-js**, added the provider in `app/providers.tsx` and instrumented',
  'four events.',
  '',
  '### Next steps',
  '',
  '- Deploy, then open *Activity* in PostHog to see the events arrive',
  '- Review the event plan with your team',
  '',
  '```ts',
  "posthog.capture('user_signed_up', { plan: 'free' })",
  '```',
].join('\n');

const EVENT_PLAN = {
  events: [
    { name: 'user_signed_up', description: 'A new account was created' },
    { name: 'project_created', description: 'The user created their first project' },
    { name: 'checkout_started', description: 'The user opened the checkout page' },
    { name: 'subscription_upgraded', description: 'A paid plan was bought' },
  ],
};

/** A Next.js run's steps, in order; `progress('completed', 'in_progress')` is the first two with those statuses. */
const STEPS = [
  'Detect the framework',
  'Install posthog-js',
  'Add the PostHog provider',
  'Instrument the planned events',
  'Verify that events arrive',
];
const progress = (...statuses: TaskStatus[]) =>
  statuses.map((status, index) => ({
    id: `t${index + 1}`,
    title: STEPS[index] ?? `step ${index + 1}`,
    status,
  }));

/** The dashboard in headless Chromium, served by `npm start`'s edge, fed by the push client. */
describe('dashboard in Chromium', () => {
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;
  let recorded: RecordedPage;
  let push: PushClient;
  let teamId: number;
  const started = {
    completed: minutesAgo(180),
    failed: minutesAgo(120),
    live: minutesAgo(20),
    queued: minutesAgo(10),
    latest: minutesAgo(5),
  };

  const text = (testId: string) => page.locator(`[data-testid="${testId}"]`).textContent();
  const visible = (testId: string) => page.locator(`[data-testid="${testId}"]`).isVisible();

  const live = (overrides: Partial<UpsertSessionInput> = {}): UpsertSessionInput => ({
    session_id: 'run-live',
    workflow_id: WORKFLOW,
    skill_id: 'nextjs',
    started_at: started.live,
    run_phase: 'running',
    tasks: progress('completed', 'completed', 'in_progress', 'pending'),
    ...overrides,
  });

  async function connectTo(workflowId: string): Promise<void> {
    await page.fill('input[name="workflowId"]', workflowId);
    await page.click('button[type="submit"]');
    await page.waitForSelector('[data-testid="connection-state"][data-state="open"]', { timeout: 15_000 });
    await page.waitForSelector('[data-testid="session-list"][data-loaded="true"]', {
      state: 'attached',
      timeout: 10_000,
    });
  }

  beforeAll(async () => {
    stack = await startLocalStack({
      HEARTBEAT_MS: '1000',
      STREAM_MAX_DURATION_MS: '120000',
      STALE_AFTER_MS: String(STALE_AFTER_MS),
      STALE_SWEEP_MS: '500',
    });
    const team = required(stack.credentials.teams[0], 'team 1');
    teamId = team.id;
    push = createPushClient({ baseUrl: stack.url, projectId: teamId, apiKey: team.api_key });
    browser = await launchChromium();
    page = await browser.context.newPage();
    await page.setViewportSize(WIDE);
    recorded = await recordConnectionStates(page);
    await mkdir(ARTIFACTS, { recursive: true });
  }, 150_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.dispose();
  }, 30_000);

  it("lists the workflow's runs newest first with phase, skill, start time and stale badge", async () => {
    await page.goto(`${stack.url}/?project=${teamId}&workflow=${WORKFLOW}`);
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.inputValue('input[name="apiKey"]')).toBe(stack.credentials.teams[0]?.api_key);

    await push.upsert({
      session_id: 'run-completed',
      workflow_id: WORKFLOW,
      skill_id: 'nextjs',
      started_at: started.completed,
      run_phase: 'completed',
      tasks: progress('completed', 'completed', 'completed', 'completed'),
      event_plan: EVENT_PLAN,
      handoff_text: HANDOFF,
    });
    await push.upsert({
      session_id: 'run-failed',
      workflow_id: WORKFLOW,
      skill_id: 'react-native',
      started_at: started.failed,
      run_phase: 'error',
      tasks: [
        { id: 't1', title: 'Detect the framework', status: 'completed' },
        { id: 't2', title: 'Install posthog-react-native', status: 'failed' },
        { id: 't3', title: 'Instrument the planned events', status: 'canceled' },
      ],
      error: {
        type: 'InstallError',
        message: 'npm install exited with code 1: could not resolve the peer dependency react@19',
        exit_code: 1,
      },
    });
    await push.upsert(live());
    await push.upsert({
      session_id: 'run-queued',
      workflow_id: WORKFLOW,
      skill_id: 'django',
      started_at: started.queued,
      run_phase: 'idle',
    });
    await push.upsert({
      session_id: 'run-latest',
      workflow_id: WORKFLOW,
      skill_id: 'flask',
      started_at: started.latest,
      run_phase: 'completed',
      tasks: progress('completed'),
    });

    await page.click('button[type="submit"]');
    await page.waitForSelector('[data-testid="connection-state"][data-state="open"]', { timeout: 10_000 });
    expect(await text('connection-state')).toBe('live');
    await page.waitForSelector('[data-testid="session-list"][data-loaded="true"]', {
      state: 'attached',
      timeout: 10_000,
    });

    expect(await rowIds(page)).toEqual([
      'run-latest',
      'run-queued',
      'run-live',
      'run-failed',
      'run-completed',
    ]);
    const rows = await page.$$eval('[data-testid="session-row"]', (items) =>
      items.map((item) => ({
        phase: item.querySelector('[data-testid="row-phase"]')?.textContent,
        skill: item.querySelector('[data-testid="row-skill"]')?.textContent,
        started: item.querySelector('[data-testid="row-started"]')?.textContent,
        stale: !(item.querySelector('[data-testid="row-stale"]') as HTMLElement).hidden,
      })),
    );
    expect(rows).toEqual([
      { phase: 'completed', skill: 'flask', started: localTimestamp(started.latest), stale: false },
      { phase: 'idle', skill: 'django', started: localTimestamp(started.queued), stale: false },
      { phase: 'running', skill: 'nextjs', started: localTimestamp(started.live), stale: false },
      { phase: 'error', skill: 'react-native', started: localTimestamp(started.failed), stale: false },
      { phase: 'completed', skill: 'nextjs', started: localTimestamp(started.completed), stale: false },
    ]);
    expect(await text('page-range')).toBe('1–5 of 5');

    // Not the newest run (a completed one): the newest running one.
    await detailShows(page, 'run-live', 1);
    expect(await rowFor(page, 'run-live').locator('button').getAttribute('aria-current')).toBe('true');
    expect(await text('session-title')).toBe(`${WORKFLOW} / nextjs`);
    expect(await page.locator('[data-testid="task"] .title').allTextContents()).toEqual(STEPS.slice(0, 4));
  }, 60_000);

  it('shows a live push to the selected run within 2 s', async () => {
    const pushedAt = Date.now();
    const pushed = await push.upsert(
      live({
        tasks: progress('completed', 'completed', 'completed', 'in_progress'),
      }),
    );
    await detailShows(page, 'run-live', pushed.version);
    expect(Date.now() - pushedAt).toBeLessThan(2000);
    expect(await page.locator('[data-testid="task"] .status').allTextContents()).toEqual([
      'done',
      'done',
      'done',
      'in progress',
    ]);
    expect(await text('latency')).toMatch(/\d( ms| s)$/);
    await rowShowsVersion(page, 'run-live', pushed.version);
  }, 30_000);

  it('updates a run that is not selected, live, and leaves the detail on the selected one', async () => {
    const shownVersion = Number(await text('version'));
    const pushed = await push.upsert({
      session_id: 'run-queued',
      workflow_id: WORKFLOW,
      skill_id: 'django',
      started_at: started.queued,
      run_phase: 'running',
      tasks: progress('in_progress'),
    });
    await rowShowsVersion(page, 'run-queued', pushed.version);
    expect(await rowFor(page, 'run-queued').locator('[data-testid="row-phase"]').textContent()).toBe(
      'running',
    );
    expect(await text('session-id')).toBe('run-live');
    expect(Number(await text('version'))).toBe(shownVersion);
    expect(await rowFor(page, 'run-live').locator('button').getAttribute('aria-current')).toBe('true');
    expect(await rowFor(page, 'run-queued').locator('button').getAttribute('aria-current')).toBeNull();
  }, 30_000);

  it('follows a new run until a row is picked, then stays on the picked one', async () => {
    await push.upsert({
      session_id: 'run-new',
      workflow_id: WORKFLOW,
      skill_id: 'nextjs',
      started_at: minutesAgo(1),
      run_phase: 'running',
    });
    await detailShows(page, 'run-new', 1);
    expect((await rowIds(page))[0]).toBe('run-new');
    expect(await text('page-range')).toBe('1–6 of 6');

    await clickRow(page, 'run-live');
    await detailShows(page, 'run-live', 1);
    await push.upsert({
      session_id: 'run-newest',
      workflow_id: WORKFLOW,
      skill_id: 'nextjs',
      started_at: new Date().toISOString(),
      run_phase: 'running',
    });
    await page.waitForFunction(
      () =>
        document.querySelector('[data-testid="session-row"]')?.getAttribute('data-session-id') ===
        'run-newest',
      undefined,
      { timeout: 10_000 },
    );
    expect(await text('session-id')).toBe('run-live');
  }, 30_000);

  it('shows a failed run with its error type and message', async () => {
    await clickRow(page, 'run-failed');
    await detailShows(page, 'run-failed', 1);
    expect(await text('run-phase')).toBe('error');
    expect(await text('error-type')).toBe('InstallError');
    expect(await text('error-message')).toBe(
      'npm install exited with code 1: could not resolve the peer dependency react@19',
    );
    expect(JSON.parse((await text('error-details')) ?? '')).toEqual({ exit_code: 1 });
    expect(await text('version')).toBe('1');
    expect(await text('updated-at')).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(await text('updated-ago')).toMatch(/ago$/);
    expect(await visible('event-plan-section')).toBe(false);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-failed.png'), fullPage: true });
  }, 30_000);

  it('shows a completed run with its event plan as a table and its rendered handoff', async () => {
    await clickRow(page, 'run-completed');
    await detailShows(page, 'run-completed', 1);
    const plan = await page.$$eval('[data-testid="event-plan-row"]', (rows) =>
      rows.map((row) => [...row.querySelectorAll('td')].map((cell) => cell.textContent)),
    );
    expect(plan).toEqual(EVENT_PLAN.events.map((event) => [event.name, event.description]));
    expect(await page.locator('[data-testid="event-plan"] th').allTextContents()).toEqual([
      'Event',
      'Description',
    ]);
    expect(await page.locator('[data-testid="handoff"] h2').textContent()).toBe('PostHog is set up');
    expect(await page.locator('[data-testid="handoff"] li').count()).toBe(2);
    expect(await page.locator('[data-testid="handoff"] code').first().textContent()).toBe(
      'app/providers.tsx',
    );
    expect(await visible('error')).toBe(false);
    expect(await visible('pending-input')).toBe(false);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-completed.png'), fullPage: true });
  }, 30_000);

  it('shows a run in progress with the question it waits on', async () => {
    await clickRow(page, 'run-live');
    const pushed = await push.upsert(
      live({
        tasks: progress('completed', 'completed', 'completed', 'in_progress', 'pending'),
        event_plan: EVENT_PLAN,
        pending_input: {
          id: 'q1',
          question_count: 2,
          sensitive: false,
          prompts: ['Which events should be tracked first?', 'Should the EU cloud be used?'],
        },
      }),
    );
    await detailShows(page, 'run-live', pushed.version);
    expect(await page.locator('[data-testid="pending-input-body"] li').allTextContents()).toEqual([
      'Which events should be tracked first?',
      'Should the EU cloud be used?',
    ]);
    expect(await text('pending-input-body')).toContain('2 questions waiting');
    expect(await visible('stale')).toBe(false);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-running.png'), fullPage: true });
  }, 30_000);

  it('never shows the text of a sensitive question, in the detail or the list', async () => {
    const pushed = await push.upsert(
      live({
        pending_input: { id: 'q2', question_count: 1, sensitive: true, prompts: [SECRET_PROMPT] },
      }),
    );
    await detailShows(page, 'run-live', pushed.version);
    expect(await text('pending-input-body')).toBe('Input required');
    expect(await page.content()).not.toContain('phx_secret_123');
  }, 30_000);

  it('renders hostile ids, titles, event plans, errors and handoff markdown inert', async () => {
    const hostileTitle = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    const pushed = await push.upsert({
      session_id: HOSTILE_ID,
      workflow_id: WORKFLOW,
      skill_id: 'nextjs',
      started_at: new Date().toISOString(),
      run_phase: 'error',
      tasks: [{ id: 't1', title: hostileTitle, status: 'failed' }],
      event_plan: { events: [{ name: '<script>window.__pwned=7</script>', description: hostileTitle }] },
      error: { type: '<b>Bold</b>', message: '<img src=x onerror="window.__pwned=8">' },
      handoff_text: [
        '# Report',
        '',
        'All **done**.',
        '',
        '<script>window.__pwned = 3</script>',
        '<img src="x" onerror="window.__pwned = 4">',
        '[click](javascript:window.__pwned=5)',
        '',
        `\`${'x'.repeat(400)}\``,
        '',
        'y'.repeat(400),
      ].join('\n'),
    });
    await rowShowsVersion(page, HOSTILE_ID, pushed.version);
    await clickRow(page, HOSTILE_ID);
    await detailShows(page, HOSTILE_ID, pushed.version);

    expect(await text('session-id')).toBe(HOSTILE_ID);
    expect(await rowFor(page, HOSTILE_ID).locator('[data-testid="row-id"]').textContent()).toBe(HOSTILE_ID);
    expect(await page.locator('[data-testid="task"] .title').textContent()).toBe(hostileTitle);
    expect(await page.locator('[data-testid="event-plan-row"] td').allTextContents()).toEqual([
      '<script>window.__pwned=7</script>',
      hostileTitle,
    ]);
    expect(await text('error-type')).toBe('<b>Bold</b>');
    expect(await text('error-message')).toBe('<img src=x onerror="window.__pwned=8">');
    // Outside the sanitised handoff, no markup from the server becomes an element.
    expect(
      await page
        .locator(
          '[data-testid="session-list"] :is(img, script, b), main :is(img, script, b):not([data-testid="handoff"] *)',
        )
        .count(),
    ).toBe(0);

    expect(await page.locator('[data-testid="handoff"] h1').textContent()).toBe('Report');
    expect(await page.locator('[data-testid="handoff"] strong').textContent()).toBe('done');
    expect(await page.locator('[data-testid="handoff"] script').count()).toBe(0);
    const images = page.locator('[data-testid="handoff"] img');
    expect(await images.count()).toBe(1);
    expect(await images.first().getAttribute('onerror')).toBeNull();
    // Let the broken image finish failing: a surviving handler would have run by then.
    await page.waitForFunction(() =>
      [...document.querySelectorAll('[data-testid="handoff"] img')].every(
        (image) => (image as HTMLImageElement).complete,
      ),
    );
    expect(await page.locator('[data-testid="handoff"] a[href^="javascript:" i]').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
  }, 30_000);

  it('fits 320 px without horizontal scrolling, the runs above the detail, and 1440 px side by side', async () => {
    try {
      await page.setViewportSize(NARROW);
      // The hostile run carries 400-character words in its handoff; the completed one a table and code.
      for (const sessionId of [HOSTILE_ID, 'run-completed', 'run-failed']) {
        await clickRow(page, sessionId);
        await detailShows(page, sessionId, 1);
        expect(await horizontalOverflow(page), `overflow with ${sessionId} selected`).toEqual([]);
      }
      const list = required(await page.locator('.runs').boundingBox(), 'the runs card');
      const detail = required(await page.locator('[data-testid="session"]').boundingBox(), 'the detail');
      expect(detail.y).toBeGreaterThanOrEqual(list.y + list.height);
      expect(list.width).toBeLessThanOrEqual(NARROW.width);
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: join(ARTIFACTS, 'dashboard-narrow.png'), fullPage: true });
    } finally {
      await page.setViewportSize(WIDE);
    }
    expect(await horizontalOverflow(page)).toEqual([]);
    const list = required(await page.locator('.runs').boundingBox(), 'the runs card');
    const detail = required(await page.locator('[data-testid="session"]').boundingBox(), 'the detail');
    expect(detail.x).toBeGreaterThanOrEqual(list.x + list.width);
    expect(detail.y).toBeLessThan(list.y + list.height);
  }, 30_000);

  it('pages through a long workflow with newer and older, and keeps a later page live', async () => {
    for (let index = 1; index <= 23; index++) {
      await push.upsert({
        session_id: `page-run-${index}`,
        workflow_id: PAGING_WORKFLOW,
        skill_id: 'nextjs',
        // page-run-1 is the newest.
        started_at: minutesAgo(index),
        run_phase: 'completed',
      });
    }
    await connectTo(PAGING_WORKFLOW);
    expect(await text('page-range')).toBe('1–20 of 23');
    expect(await rowIds(page)).toEqual(Array.from({ length: 20 }, (_, index) => `page-run-${index + 1}`));
    expect(await page.isDisabled('[data-testid="page-newer"]')).toBe(true);
    expect(await page.isDisabled('[data-testid="page-older"]')).toBe(false);

    await page.click('[data-testid="page-older"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 3);
    expect(await rowIds(page)).toEqual(['page-run-21', 'page-run-22', 'page-run-23']);
    expect(await text('page-range')).toBe('21–23 of 23');
    expect(await page.isDisabled('[data-testid="page-older"]')).toBe(true);
    expect(await page.isDisabled('[data-testid="page-newer"]')).toBe(false);

    const pushed = await push.upsert({
      session_id: 'page-run-22',
      workflow_id: PAGING_WORKFLOW,
      skill_id: 'nextjs',
      started_at: minutesAgo(22),
      run_phase: 'error',
      error: { type: 'Timeout', message: 'no answer' },
    });
    await rowShowsVersion(page, 'page-run-22', pushed.version);
    expect(await rowFor(page, 'page-run-22').locator('[data-testid="row-phase"]').textContent()).toBe(
      'error',
    );

    await page.click('[data-testid="page-newer"]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="session-row"]').length === 20);
    expect((await rowIds(page))[0]).toBe('page-run-1');
  }, 60_000);

  it(
    'marks a run that goes stale, live, in its row and its detail',
    async () => {
      await connectTo(STALE_WORKFLOW);
      expect(await visible('no-sessions')).toBe(true);
      const pushed = await push.upsert({
        session_id: 'stale-run',
        workflow_id: STALE_WORKFLOW,
        skill_id: 'nextjs',
        started_at: new Date().toISOString(),
        run_phase: 'running',
      });
      await detailShows(page, 'stale-run', pushed.version);
      expect(await rowFor(page, 'stale-run').locator('[data-testid="row-stale"]').isVisible()).toBe(false);
      expect(await visible('stale')).toBe(false);
      // write-api records the transition (version + 1) and publishes it; the page gets it on the stream.
      await rowShowsVersion(page, 'stale-run', pushed.version + 1, STALE_AFTER_MS + 20_000);
      expect(await rowFor(page, 'stale-run').locator('[data-testid="row-stale"]').isVisible()).toBe(true);
      await detailShows(page, 'stale-run', pushed.version + 1);
      expect(await visible('stale')).toBe(true);
    },
    STALE_AFTER_MS + 40_000,
  );

  it('connecting again shows the new connection, never the replaced one closing', async () => {
    await recorded.clearStates();
    await page.fill('input[name="workflowId"]', WORKFLOW);
    await page.click('button[type="submit"]');
    await page.waitForFunction(
      () => (window as unknown as { __states: string[] }).__states.includes('open'),
      undefined,
      { timeout: 10_000 },
    );
    expect(await recorded.states()).toEqual(['connecting', 'open']);
    await page.waitForSelector('[data-testid="session-list"][data-loaded="true"]', {
      state: 'attached',
      timeout: 10_000,
    });
    expect(await rowIds(page)).toContain('run-live');
  }, 30_000);

  it('reconnects through the edge when its gateway is killed and shows the next run', async () => {
    const gateways = printedGateways(stack.output());
    expect(gateways).toHaveLength(2);
    // Streams replaced by connecting again may take a moment to be torn down on their gateway.
    const serving = await until(
      () => {
        const busy = gateways.filter((gateway) => establishedConnectionsOnPort(gateway.port) > 0);
        return busy.length === 1 ? busy : undefined;
      },
      { timeoutMs: 5000, what: 'exactly one gateway to serve the page' },
    );
    const victim = required(serving[0], 'the gateway serving the page');
    await recorded.clearStates();
    process.kill(victim.pid, 'SIGKILL');
    await until(() => !isAlive(victim.pid), { timeoutMs: 5000, what: 'the killed gateway to be gone' });

    await page.waitForFunction(
      () => (window as unknown as { __states: string[] }).__states.join(',').includes('reconnecting'),
      undefined,
      { timeout: 10_000 },
    );
    await page.waitForSelector('[data-testid="connection-state"][data-state="open"]', { timeout: 15_000 });
    const survivor = required(
      gateways.find((gateway) => gateway.pid !== victim.pid),
      'the surviving gateway',
    );
    expect(establishedConnectionsOnPort(survivor.port)).toBeGreaterThan(0);

    const pushedAt = Date.now();
    await push.upsert({
      session_id: 'run-after-failover',
      workflow_id: WORKFLOW,
      skill_id: 'nextjs',
      started_at: new Date().toISOString(),
      run_phase: 'running',
      tasks: progress('in_progress'),
    });
    // Nothing was picked on this connection: the new run is followed.
    await detailShows(page, 'run-after-failover', 1);
    expect(Date.now() - pushedAt).toBeLessThan(2000);
    expect((await rowIds(page))[0]).toBe('run-after-failover');
  }, 60_000);

  it('falls back to polling where a proxy blocks the stream, shows it, and still follows new runs', async () => {
    // A corporate proxy that lets the API through but not `…/stream/`.
    const blockStreams = (route: Route) => route.abort('connectionrefused');
    await page.route('**/sessions/stream/**', blockStreams);
    try {
      await page.goto(`${stack.url}/?project=${teamId}`);
      await recorded.clearStates();
      await page.fill('input[name="workflowId"]', WORKFLOW);
      await page.click('button[type="submit"]');
      await page.waitForSelector('[data-testid="connection-state"][data-state="polling"]', {
        timeout: 30_000,
      });
      expect(await recorded.states()).toContain('reconnecting');
      await push.upsert({
        session_id: 'run-polled',
        workflow_id: WORKFLOW,
        skill_id: 'nextjs',
        started_at: new Date().toISOString(),
        run_phase: 'running',
        tasks: progress('in_progress'),
      });
      // Within a poll interval (3 s ± 20 %) and the list read that follows it.
      await detailShows(page, 'run-polled', 1, 10_000);
      await until(async () => (await rowIds(page))[0] === 'run-polled', {
        timeoutMs: 10_000,
        what: 'the polled run at the top of the list',
      });
    } finally {
      await page.unroute('**/sessions/stream/**', blockStreams);
    }
  }, 60_000);
});
