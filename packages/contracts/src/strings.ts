/**
 * PostgreSQL cannot store U+0000 in text or jsonb, nor a lone UTF-16 surrogate in jsonb. Such strings
 * are rejected at the edge so that they produce a 400 instead of a database error.
 */
const UNSTORABLE = /\u0000|\p{Cs}/u;

export function isStorableString(value: string): boolean {
  return !UNSTORABLE.test(value);
}

/** The path of the first string (value or object key) PostgreSQL could not store, or undefined. */
export function findUnstorableString(
  value: unknown,
  path: (string | number)[] = [],
): (string | number)[] | undefined {
  if (typeof value === 'string') return isStorableString(value) ? undefined : path;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const found = findUnstorableString(value[index], [...path, index]);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, child] of Object.entries(value)) {
      if (!isStorableString(key)) return [...path, key];
      const found = findUnstorableString(child, [...path, key]);
      if (found) return found;
    }
  }
  return undefined;
}
