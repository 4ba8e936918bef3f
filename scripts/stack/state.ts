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

/** Generated once so that stream tokens and the gateways' internal token stay valid across restarts. */
export interface StackSecrets {
  stream_token_secret: string;
  internal_api_token: string;
}

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

export async function loadOrCreateSecrets(path: string): Promise<StackSecrets> {
  const existing = await readJson<Partial<StackSecrets>>(path);
  if (existing?.stream_token_secret && existing.internal_api_token) {
    return existing as StackSecrets;
  }
  const secrets: StackSecrets = {
    stream_token_secret: randomBytes(32).toString('hex'),
    internal_api_token: randomBytes(24).toString('hex'),
  };
  await writeJson(path, secrets);
  return secrets;
}
