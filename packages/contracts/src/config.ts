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

/** Values that must never appear in an error message: loadConfig names their length only. */
const secretSchemas = new WeakSet<z.ZodType>();

/** A shared secret: unset, or at least `minLength` characters (a short one is a mistake, not a choice). */
export function envSecret(minLength: number): z.ZodType<string | undefined> {
  const schema = z.preprocess(
    blankAsUnset,
    z
      .string()
      .min(minLength, { error: `must be at least ${minLength} characters` })
      .optional(),
  );
  secretSchemas.add(schema);
  return schema;
}

/**
 * How a service logs in to NATS and encrypts the connection (docs/operations.md#security). All optional:
 * anonymous over plain TCP when unset, TLS when NATS_TLS_CA_FILE is set. The rules between them are
 * `refineNatsEnv`'s.
 */
export const natsAuthEnv = {
  NATS_USER: envString(),
  NATS_PASSWORD: envSecret(8),
  NATS_TLS_CA_FILE: envString(),
  NATS_TLS_CERT_FILE: envString(),
  NATS_TLS_KEY_FILE: envString(),
};

/** The settings both services read, with one default and one rule each. */
export function serviceEnv(defaultPort: number) {
  return {
    PORT: envInt(defaultPort, { min: 0, max: 65_535 }),
    HOST: envString('127.0.0.1'),
    NATS_URL: envString('nats://127.0.0.1:4222'),
    /** The gateways' credential for re-snapshots on write-api (read calls only); unset disables them. */
    INTERNAL_API_TOKEN: envSecret(16),
    CORS_ORIGINS: envList(),
    LOG_LEVEL: envLogLevel(),
    ...natsAuthEnv,
  };
}

type NatsAuthEnv = { [Name in keyof typeof natsAuthEnv]: string | undefined };

/**
 * The rules between the NATS_* variables, for a service schema's `.superRefine`: a user needs its
 * password and the other way round, a client certificate needs its key, and both need the CA (a client
 * certificate is only sent over TLS, which NATS_TLS_CA_FILE turns on).
 */
export function refineNatsEnv(env: NatsAuthEnv, context: z.RefinementCtx): void {
  const issue = (name: keyof NatsAuthEnv, message: string) =>
    context.addIssue({ code: 'custom', path: [name], message });
  if (env.NATS_USER !== undefined && env.NATS_PASSWORD === undefined) {
    issue('NATS_USER', 'is set without NATS_PASSWORD');
  }
  if (env.NATS_PASSWORD !== undefined && env.NATS_USER === undefined) {
    issue('NATS_PASSWORD', 'is set without NATS_USER');
  }
  if ((env.NATS_TLS_CERT_FILE === undefined) !== (env.NATS_TLS_KEY_FILE === undefined)) {
    const [set, missing] =
      env.NATS_TLS_CERT_FILE === undefined
        ? (['NATS_TLS_KEY_FILE', 'NATS_TLS_CERT_FILE'] as const)
        : (['NATS_TLS_CERT_FILE', 'NATS_TLS_KEY_FILE'] as const);
    issue(set, `is set without ${missing} (a client certificate needs its key)`);
  }
  if (env.NATS_TLS_CA_FILE === undefined) {
    for (const name of ['NATS_TLS_CERT_FILE', 'NATS_TLS_KEY_FILE'] as const) {
      if (env[name] !== undefined) issue(name, 'is set without NATS_TLS_CA_FILE, which turns TLS on');
    }
  }
}

/** DATABASE_URL when set, otherwise PGlite files in PGLITE_DIR: what every entry point opening the database reads. */
export const databaseEnv = {
  DATABASE_URL: envUrl(),
  PGLITE_DIR: envString('.data/pglite'),
};

/** The database of `databaseEnv` as openDatabase's `url` / `pgliteDataDir` (one of them set). */
export function databaseLocation(env: { DATABASE_URL: string | undefined; PGLITE_DIR: string }): {
  url: string | undefined;
  pgliteDataDir: string | undefined;
} {
  return env.DATABASE_URL
    ? { url: env.DATABASE_URL, pgliteDataDir: undefined }
    : { url: undefined, pgliteDataDir: env.PGLITE_DIR };
}

type CamelCase<Name extends string> = Name extends `${infer Head}_${infer Tail}`
  ? `${Lowercase<Head>}${Capitalize<CamelCase<Tail>>}`
  : Lowercase<Name>;

export type CamelCaseKeys<Env> = { [Name in keyof Env & string as CamelCase<Name>]: Env[Name] };

/** `{ DRAIN_MS: 1 }` → `{ drainMs: 1 }`: the end of a config schema's `.transform`, so no one writes the renames out. */
export function camelCaseKeys<Env extends Record<string, unknown>>(env: Env): CamelCaseKeys<Env> {
  return Object.fromEntries(
    Object.entries(env).map(([name, value]) => [
      name.toLowerCase().replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase()),
      value,
    ]),
  ) as CamelCaseKeys<Env>;
}

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

/** The fields of an env schema, through the `.transform` that renames them. */
function fieldsOf(schema: z.ZodType): Record<string, z.ZodType> {
  if (schema instanceof z.ZodPipe) return fieldsOf(schema.in as z.ZodType);
  if (schema instanceof z.ZodObject) return schema.shape as Record<string, z.ZodType>;
  return {};
}

/** The environment variables a config schema reads: what a deployment may set for its service. */
export function envVariables(schema: z.ZodType): string[] {
  return Object.keys(fieldsOf(schema));
}

/** Parses the environment once with the service's schema; any bad value is a ConfigError naming each. */
export function loadConfig<Schema extends z.ZodType>(
  service: string,
  schema: Schema,
  env: Record<string, string | undefined>,
): z.output<Schema> {
  const fields = fieldsOf(schema);
  // Every declared variable is a key of the result, an unset one as undefined.
  const unset = Object.fromEntries(Object.keys(fields).map((name) => [name, undefined]));
  const result = schema.safeParse({ ...unset, ...env });
  if (result.success) return result.data;
  throw new ConfigError(
    service,
    result.error.issues.map((issue) => {
      const name = issue.path.join('.');
      const value = env[name];
      const field = fields[name];
      const shown =
        value === undefined
          ? '(unset)'
          : field && secretSchemas.has(field)
            ? `(${value.length} characters, not shown)`
            : JSON.stringify(value);
      return `${name}=${shown}: ${issue.message}`;
    }),
  );
}

/** An optional integer: undefined when unset (a port that turns a listener on, say). */
export const envOptionalInt = ({ min = 0, max = Number.MAX_SAFE_INTEGER } = {}) =>
  z.preprocess(blankAsUnset, z.coerce.number().int().min(min).max(max).optional());
