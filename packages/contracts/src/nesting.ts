/**
 * Free JSON fields (event_plan, error) could be nested thousands of levels deep, and every recursive
 * walk over them (validation, JSON.stringify) then overflows the stack: a 500 for a client error.
 * Real pushes nest a few levels, so anything deeper than this is refused up front with a 400.
 */
export const MAX_BODY_NESTING = 64;

/** True when the value nests objects/arrays more than `limit` levels deep; iterative, so it cannot overflow. */
export function nestsDeeperThan(value: unknown, limit: number): boolean {
  const pending: [unknown, number][] = [[value, 0]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [item, depth] = next;
    if (item === null || typeof item !== 'object') continue;
    if (depth >= limit) return true;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return false;
}
