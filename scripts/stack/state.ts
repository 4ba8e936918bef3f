import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** What the local stack keeps in `.data/` between starts. */

export interface TeamCredential {
  id: number;
  api_key: string;
}

/** `.data/credentials.json`, docs/README.md: URLs are rewritten each start, keys kept. */
export interface StackCredentials {
  url: string;
  write_api: string;
  gateways: string[];
  teams: TeamCredential[];
}

/** Generated once so that stream tokens, the gateways' internal token and the NATS logins stay valid across restarts. */
export interface StackSecrets {
  stream_token_secret: string;
  internal_api_token: string;
  /** write-api's and the gateways' passwords on the local nats-server (scripts/stack/nats-config.ts). */
  nats_write_api_password: string;
  nats_gateway_password: string;
}

const SECRET_GENERATORS: { [Name in keyof StackSecrets]: () => string } = {
  stream_token_secret: () => randomBytes(32).toString('hex'),
  internal_api_token: () => randomBytes(24).toString('hex'),
  nats_write_api_password: () => randomBytes(24).toString('hex'),
  nats_gateway_password: () => randomBytes(24).toString('hex'),
};

export function stackPaths(root: string) {
  const dataDir = join(root, '.data');
  return {
    dataDir,
    pgliteDir: join(dataDir, 'pglite'),
    credentials: join(dataDir, 'credentials.json'),
    secrets: join(dataDir, 'secrets.json'),
  };
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`could not read ${path}: ${(error as Error).message}`);
  }
}

/** Written to a temporary file and renamed, so a reader never sees half a file. */
export async function writeJson(path: string, value: unknown, mode = 0o600): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, `${JSON.stringify(value, null, 2)}\n`, { mode });
  await rename(temporary, path);
}

export async function readCredentials(path: string): Promise<StackCredentials | undefined> {
  return readJson<StackCredentials>(path);
}

/** Keeps every secret already saved and generates only the missing ones (a newer stack may add some). */
export async function loadOrCreateSecrets(path: string): Promise<StackSecrets> {
  const existing = (await readJson<Partial<StackSecrets>>(path)) ?? {};
  const missing = (Object.keys(SECRET_GENERATORS) as (keyof StackSecrets)[]).filter(
    (name) => !existing[name],
  );
  if (missing.length === 0) return existing as StackSecrets;
  const secrets = { ...existing } as StackSecrets;
  for (const name of missing) secrets[name] = SECRET_GENERATORS[name]();
  await writeJson(path, secrets);
  return secrets;
}
