import { z } from 'zod';

/**
 * Timestamps are stored as PostgreSQL timestamptz and served as `Date#toISOString()`. Both have limits
 * the ISO-8601 grammar does not: PostgreSQL refuses a UTC offset beyond ±15:59 ("time zone
 * displacement out of range"), and an instant outside the years 1–9999 in UTC is stored as a BC date
 * or a five-digit year that PGlite reads back as an invalid Date and `toISOString` cannot print. The
 * year is judged after applying the offset: `0001-01-01T00:00:00+14:00` is year 0 in UTC.
 */
export const MAX_UTC_OFFSET_MINUTES = 15 * 60 + 59;
/** 0001-01-01T00:00:00.000Z (Date.UTC maps the years 0–99 to 1900–1999, hence setUTCFullYear). */
const FIRST_MS = (() => {
  const date = new Date(0);
  date.setUTCFullYear(1, 0, 1);
  date.setUTCHours(0, 0, 0, 0);
  return date.getTime();
})();
const LAST_MS = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

const OFFSET = /(?:Z|([+-])(\d{2}):?(\d{2}))$/i;

/** The UTC instant of an ISO-8601 date-time with `Z` or an offset, or why it cannot be stored and served. */
export function isoInstant(value: string): { ok: true; date: Date } | { ok: false; reason: string } {
  const offset = OFFSET.exec(value);
  if (offset?.[1]) {
    const minutes = Number(offset[2]) * 60 + Number(offset[3]);
    if (minutes > MAX_UTC_OFFSET_MINUTES)
      return { ok: false, reason: 'has a UTC offset beyond ±15:59, which PostgreSQL cannot store.' };
  }
  const ms = Date.parse(value);
  if (!Number.isFinite(ms)) return { ok: false, reason: 'must be an ISO-8601 timestamp.' };
  if (ms < FIRST_MS || ms > LAST_MS)
    return { ok: false, reason: 'must be between the years 1 and 9999 in UTC.' };
  return { ok: true, date: new Date(ms) };
}

const isoFormat = z.iso.datetime({ offset: true, error: 'must be an ISO-8601 timestamp.' });

/**
 * An ISO-8601 date-time with `Z` or an offset whose instant PostgreSQL stores and every reader can print
 * back. Kept as sent (pending_input.asked_at is served verbatim).
 */
export const isoTimestampSchema = isoFormat.superRefine((value, ctx) => {
  const instant = isoInstant(value);
  if (!instant.ok) ctx.addIssue({ code: 'custom', message: instant.reason });
});

/**
 * The same rule, normalised to the millisecond ISO string in UTC that every read serves, so the stored
 * instant is exactly the served one (PostgreSQL would round sub-microsecond digits its own way).
 */
export const isoInstantSchema = isoTimestampSchema.transform((value) =>
  (isoInstant(value) as { ok: true; date: Date }).date.toISOString(),
);
