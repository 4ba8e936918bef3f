import { z } from 'zod';

/**
 * Environment parsing helpers. Each service declares one zod schema of its settings, reads it once at
 * start with loadConfig and passes the result down; nothing else reads process.env.
 */

const blankAsUnset = (value: unknown) =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;

export const envInt = (defaultValue: number, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) =>
  z.preprocess(blankAsUnset, z.coerce.number().int().min(min).max(max).default(defaultValue));

export const envBool = (defaultValue: boolean) =>
  z.preprocess(
    blankAsUnset,
    z
      .enum(['1', '0', 'true', 'false', 'yes', 'no', 'on', 'off'], {
        error: 'must be 1/0, true/false, yes/no or on/off',
      })
      .default(defaultValue ? '1' : '0')
      .transform((value) => ['1', 'true', 'yes', 'on'].includes(value)),
  );

export function envUrl(): z.ZodType<string | undefined>;
export function envUrl(defaultValue: string): z.ZodType<string>;
export function envUrl(defaultValue?: string): z.ZodType<string | undefined> {
  return defaultValue === undefined
    ? z.preprocess(blankAsUnset, z.url().optional())
    : z.preprocess(blankAsUnset, z.url().default(defaultValue));
}

export function envString(): z.ZodType<string | undefined>;
export function envString(defaultValue: string): z.ZodType<string>;
export function envString(defaultValue?: string): z.ZodType<string | undefined> {
  return defaultValue === undefined
    ? z.preprocess(blankAsUnset, z.string().optional())
    : z.preprocess(blankAsUnset, z.string().default(defaultValue));
}

/** A comma-separated list; blank entries are dropped. */
export const envList = () =>
  z.preprocess(
    blankAsUnset,
    z
      .string()
      .optional()
      .transform((value) =>
        (value ?? '')
          .split(',')
          .map((item) => item.trim())
          .filter(Boolean),
      ),
  );

export const envLogLevel = () =>
  z.preprocess(
    blankAsUnset,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  );

export class ConfigError extends Error {
  constructor(service: string, issues: string[]) {
    super(`${service}: invalid configuration:\n${issues.map((issue) => `  - ${issue}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function loadConfig<Schema extends z.ZodType>(
  service: string,
  schema: Schema,
  env: Record<string, string | undefined>,
): z.infer<Schema> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  throw new ConfigError(
    service,
    result.error.issues.map((issue) => {
      const name = issue.path.join('.');
      const value = env[name];
      return `${name}=${value === undefined ? '(unset)' : JSON.stringify(value)}: ${issue.message}`;
    }),
  );
}
