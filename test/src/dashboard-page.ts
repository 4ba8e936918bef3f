import type { Locator, Page } from 'playwright-core';

/** Reads and waits on what the dashboard shows, by the data-testid names of its markup. */

/** The row of a session; ids may hold any printable character, so the attribute value is quoted. */
export function rowFor(page: Page, sessionId: string): Locator {
  return page.locator(`[data-testid="session-row"][data-session-id=${JSON.stringify(sessionId)}]`);
}

export function rowIds(page: Page): Promise<(string | null)[]> {
  return page.$$eval('[data-testid="session-row"]', (rows) =>
    rows.map((row) => row.getAttribute('data-session-id')),
  );
}

export async function clickRow(page: Page, sessionId: string): Promise<void> {
  await rowFor(page, sessionId).locator('button').click();
}

/** Waits until the detail shows the session at `minVersion` or later. */
export async function detailShows(page: Page, sessionId: string, minVersion: number, timeout = 10_000) {
  await page.waitForFunction(
    ([id, version]) => {
      const detail = document.querySelector<HTMLElement>('[data-testid="session"]');
      const shown = Number(document.querySelector('[data-testid="version"]')?.textContent);
      return detail && !detail.hidden && detail.dataset.sessionId === id && shown >= Number(version);
    },
    [sessionId, minVersion] as const,
    { timeout },
  );
}

/** Waits until the session's row shows `minVersion` or later. */
export async function rowShowsVersion(page: Page, sessionId: string, minVersion: number, timeout = 10_000) {
  await page.waitForFunction(
    ([id, version]) =>
      [...document.querySelectorAll<HTMLElement>('[data-testid="session-row"]')].some(
        (row) => row.dataset.sessionId === id && Number(row.dataset.version) >= Number(version),
      ),
    [sessionId, minVersion] as const,
    { timeout },
  );
}

/**
 * Whatever sticks out sideways: the page scrolling horizontally, or an element whose right edge is past
 * the viewport (described by its tag, test id and class). Empty when the layout fits.
 */
export function horizontalOverflow(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const problems: string[] = [];
    if (document.documentElement.scrollWidth > width) {
      problems.push(`the page is ${document.documentElement.scrollWidth} px wide in a ${width} px viewport`);
    }
    for (const element of document.body.querySelectorAll<HTMLElement>('*')) {
      const box = element.getBoundingClientRect();
      if (box.width === 0 || box.right <= width + 0.5) continue;
      const name = `${element.tagName.toLowerCase()}${element.dataset.testid ? `[${element.dataset.testid}]` : ''}${element.className ? `.${element.className}` : ''}`;
      problems.push(`${name} ends at ${Math.round(box.right)} px`);
    }
    return problems;
  });
}

export interface RecordedPage {
  /** Every connection state the pill showed since the last clear, so a brief one is not missed. */
  states(): Promise<string[]>;
  clearStates(): Promise<void>;
}

export async function recordConnectionStates(page: Page): Promise<RecordedPage> {
  await page.addInitScript(() => {
    const states: string[] = [];
    (window as unknown as { __states: string[] }).__states = states;
    document.addEventListener('DOMContentLoaded', () => {
      const pill = document.querySelector('[data-testid="connection-state"]');
      if (!pill) return;
      new MutationObserver(() => {
        const state = pill.getAttribute('data-state') ?? '';
        if (states.at(-1) !== state) states.push(state);
      }).observe(pill, { attributes: true, attributeFilter: ['data-state'] });
    });
  });
  return {
    states: () => page.evaluate(() => [...(window as unknown as { __states: string[] }).__states]),
    clearStates: () =>
      page.evaluate(() => {
        (window as unknown as { __states: string[] }).__states.length = 0;
      }),
  };
}
