import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createPushClient, type PushClient, type UpsertSessionInput } from '@wizard-stream/client';
import { until } from '@wizard-stream/testkit';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Browser, launchChromium } from './src/browser.js';
import { type LocalStack, printedGateways, REPO_ROOT, startLocalStack } from './src/local-stack.js';
import { isAlive } from './src/processes.js';
import { required } from './src/required.js';
import { establishedConnectionsOnPort } from './src/tcp.js';

const WORKFLOW = 'browser-flow';
const SCREENSHOT = join(REPO_ROOT, 'test', 'artifacts', 'dashboard.png');

/** The dashboard in headless Chromium, served by `npm start`'s edge, fed by the push client. */
describe('dashboard in Chromium', () => {
  let stack: LocalStack;
  let browser: Browser;
  let page: Page;
  let push: PushClient;
  let teamId: number;
  const startedAt = new Date().toISOString();

  const session = (overrides: Partial<UpsertSessionInput>): UpsertSessionInput => ({
    session_id: 'browser-session',
    workflow_id: WORKFLOW,
    skill_id: 'setup',
    started_at: startedAt,
    run_phase: 'running',
    tasks: [],
    ...overrides,
  });

  const text = (testId: string) => page.locator(`[data-testid="${testId}"]`).textContent();
  const versionShown = (version: number) =>
    page.waitForFunction(
      (expected) => document.querySelector('[data-testid="version"]')?.textContent === String(expected),
      version,
      { timeout: 10_000 },
    );

  beforeAll(async () => {
    stack = await startLocalStack({ HEARTBEAT_MS: '1000', STREAM_MAX_DURATION_MS: '120000' });
    const team = required(stack.credentials.teams[0], 'team 1');
    teamId = team.id;
    push = createPushClient({ baseUrl: stack.url, projectId: teamId, apiKey: team.api_key });
    browser = await launchChromium();
    page = await browser.context.newPage();
    // Records every connection state and session id the page shows, so a brief one is not missed.
    await page.addInitScript(() => {
      const states: string[] = [];
      const sessionIds: string[] = [];
      (window as unknown as { __states: string[] }).__states = states;
      (window as unknown as { __sessionIds: string[] }).__sessionIds = sessionIds;
      document.addEventListener('DOMContentLoaded', () => {
        const pill = document.querySelector('[data-testid="connection-state"]');
        const sessionId = document.querySelector('[data-testid="session-id"]');
        if (!pill || !sessionId) return;
        new MutationObserver(() => {
          const state = pill.getAttribute('data-state') ?? '';
          if (states.at(-1) !== state) states.push(state);
        }).observe(pill, { attributes: true, attributeFilter: ['data-state'] });
        new MutationObserver(() => {
          const id = sessionId.textContent ?? '';
          if (sessionIds.at(-1) !== id) sessionIds.push(id);
        }).observe(sessionId, { childList: true, characterData: true, subtree: true });
      });
    });
  }, 150_000);

  afterAll(async () => {
    await browser?.close();
    await stack?.dispose();
  }, 30_000);

  it('loads from the edge, pre-fills the local key, and shows a push within 2 s', async () => {
    await page.goto(`${stack.url}/?project=${teamId}&workflow=${WORKFLOW}`);
    await page.waitForSelector('body[data-ready="true"]');
    expect(await page.inputValue('input[name="apiKey"]')).toBe(stack.credentials.teams[0]?.api_key);
    await page.click('button[type="submit"]');
    await page.waitForSelector('[data-testid="connection-state"][data-state="open"]', { timeout: 10_000 });

    const pushedAt = Date.now();
    await push.upsert(
      session({
        tasks: [
          { id: 't1', title: 'Detect the framework', status: 'completed' },
          { id: 't2', title: 'Install the SDK', status: 'in_progress' },
        ],
      }),
    );
    await versionShown(1);
    expect(Date.now() - pushedAt).toBeLessThan(2000);
    expect(await text('run-phase')).toBe('running');
    expect(await page.locator('[data-testid="task"] .title').allTextContents()).toEqual([
      'Detect the framework',
      'Install the SDK',
    ]);
    expect(await text('latency')).toMatch(/ms|s$/);
  }, 30_000);

  it('renders hostile task titles and handoff markdown inert', async () => {
    const hostileTitle = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>';
    await push.upsert(
      session({
        run_phase: 'completed',
        tasks: [{ id: 't1', title: hostileTitle, status: 'completed' }],
        handoff_text: [
          '# Report',
          '',
          'All **done**.',
          '',
          '<script>window.__pwned = 3</script>',
          '<img src="x" onerror="window.__pwned = 4">',
          '[click](javascript:window.__pwned=5)',
        ].join('\n'),
      }),
    );
    await versionShown(2);
    expect(await page.locator('[data-testid="task"] .title').textContent()).toBe(hostileTitle);
    expect(await page.locator('[data-testid="tasks"] img, [data-testid="tasks"] script').count()).toBe(0);
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

  it('never shows the text of a sensitive question', async () => {
    await push.upsert(
      session({
        run_phase: 'running',
        tasks: [{ id: 't1', title: 'Configure the key', status: 'in_progress' }],
        pending_input: {
          id: 'q1',
          question_count: 1,
          sensitive: true,
          prompts: ['Paste your secret key sk_live_123'],
        },
      }),
    );
    await versionShown(3);
    expect(await text('pending-input-body')).toBe('Input required');
    expect(await page.content()).not.toContain('sk_live_123');
  }, 30_000);

  it('keeps showing the latest session when an older run of the workflow updates', async () => {
    const hourEarlier = new Date(Date.parse(startedAt) - 3_600_000).toISOString();
    await push.upsert(session({ session_id: 'older-run', started_at: hourEarlier, tasks: [] }));
    // Sent after the older run's frame, so on the same stream it arrives after it.
    await push.upsert(
      session({
        run_phase: 'running',
        tasks: [{ id: 't1', title: 'Configure the key', status: 'completed' }],
      }),
    );
    await versionShown(4);
    expect(await text('session-id')).toBe('browser-session');
    const shown = await page.evaluate(() => (window as unknown as { __sessionIds: string[] }).__sessionIds);
    expect(shown).not.toContain('older-run');
  }, 30_000);

  it('connecting again shows the new connection, never the replaced one closing', async () => {
    await page.evaluate(() => {
      (window as unknown as { __states: string[] }).__states.length = 0;
    });
    await page.click('button[type="submit"]');
    await page.waitForFunction(
      () => (window as unknown as { __states: string[] }).__states.includes('open'),
      undefined,
      { timeout: 10_000 },
    );
    expect(await page.evaluate(() => (window as unknown as { __states: string[] }).__states)).toEqual([
      'connecting',
      'open',
    ]);
    // The snapshot on the new connection is the latest session again.
    await page.waitForSelector('[data-testid="session"]', { state: 'visible', timeout: 10_000 });
    expect(await text('session-id')).toBe('browser-session');
  }, 30_000);

  it('reconnects through the edge when its gateway is killed and shows the next update', async () => {
    const gateways = printedGateways(stack.output());
    expect(gateways).toHaveLength(2);
    // The stream replaced by connecting again may take a moment to be torn down on its gateway.
    const serving = await until(
      () => {
        const busy = gateways.filter((gateway) => establishedConnectionsOnPort(gateway.port) > 0);
        return busy.length === 1 ? busy : undefined;
      },
      { timeoutMs: 5000, what: 'exactly one gateway to serve the page' },
    );
    const victim = required(serving[0], 'the gateway serving the page');
    await page.evaluate(() => {
      (window as unknown as { __states: string[] }).__states.length = 0;
    });
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
    await push.upsert(
      session({
        run_phase: 'running',
        tasks: [
          { id: 't1', title: 'Detect the framework', status: 'completed' },
          { id: 't2', title: 'Install the SDK', status: 'completed' },
          { id: 't3', title: 'Add event tracking', status: 'in_progress' },
          { id: 't4', title: 'Verify events arrive', status: 'pending' },
        ],
        pending_input: {
          id: 'q2',
          question_count: 1,
          sensitive: false,
          prompts: ['Which events should be tracked first?'],
        },
        handoff_text:
          '## Progress\n\n- SDK installed\n- Tracking `signup` and `checkout`\n\n> Next: verify events',
      }),
    );
    await versionShown(5);
    expect(Date.now() - pushedAt).toBeLessThan(2000);
    expect(await page.locator('[data-testid="task"]').count()).toBe(4);
    expect(await text('pending-input-body')).toContain('Which events should be tracked first?');

    await mkdir(join(REPO_ROOT, 'test', 'artifacts'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  }, 60_000);
});
