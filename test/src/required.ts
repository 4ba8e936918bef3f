/** Narrows a value a test depends on, failing with what was missing instead of a TypeError later. */
export function required<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new Error(`expected ${what}, got ${value}`);
  return value;
}
