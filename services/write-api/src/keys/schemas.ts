import { SCOPES } from '@wizard-stream/contracts';
import { z } from 'zod';

/** What `POST /api/personal_api_keys/` takes; also what the OpenAPI document shows (openapi/route-schemas.ts). */
export const createKeyBodySchema = z.object({
  label: z.string().trim().max(40).default(''),
  scopes: z
    .array(z.enum(Object.values(SCOPES) as [string, ...string[]]))
    .min(1)
    .refine((scopes) => new Set(scopes).size === scopes.length, { error: 'scopes must not repeat' }),
});

export const keyIdSchema = z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** A key as the API shows it; only the create response adds `value`, the key itself, once. */
export const personalApiKeySchema = z.object({
  id: z.int().positive(),
  label: z.string(),
  scopes: z.array(z.string()),
  created_at: z.iso.datetime(),
  last_used_at: z.iso.datetime().nullable(),
});
