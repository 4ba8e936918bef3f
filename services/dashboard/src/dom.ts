/** The markup's elements are found by data-testid, the names the browser tests use too. */
export function byTestId<T extends HTMLElement = HTMLElement>(id: string, root: ParentNode = document): T {
  const element = root.querySelector<T>(`[data-testid="${id}"]`);
  if (!element) throw new Error(`dashboard markup is missing [data-testid="${id}"]`);
  return element;
}

/**
 * A new element whose text, if any, is set as textContent: values from the server never become markup
 * (the sanitised handoff is the one exception, in the detail view).
 */
export function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  { className, testId, text }: { className?: string; testId?: string; text?: string } = {},
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (testId) node.dataset.testid = testId;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** A phase badge, styled per phase by `data-phase`. */
export function setPhaseBadge(badge: HTMLElement, phase: string): void {
  badge.dataset.phase = phase;
  badge.textContent = phase;
}
