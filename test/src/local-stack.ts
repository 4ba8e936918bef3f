import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { cp, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, until } from '@wizard-stream/testkit';
import { descendantsOf, isAlive, killQuietly } from './processes.js';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface StackCredentials {
  url: string;
  write_api: string;
  gateways: string[];
  teams: { id: number; api_key: string }[];
}

/** Skipped when copying: installed or generated state a fresh clone would not have. */
const NOT_COPIED = new Set(['node_modules', '.data', '.git', '.turbo', 'dist', 'artifacts', 'coverage']);

/**
 * A copy of the working tree without node_modules or .data, as a fresh clone would look, with the
 * installed node_modules folders linked in (installing again would take minutes and the network).
 */
export async function copyRepository(): Promise<string> {
  const directory = await mkdtemp(join(tmpdir(), 'wizard-stream-e2e-'));
  await cp(REPO_ROOT, directory, {
    recursive: true,
    preserveTimestamps: true,
    filter: (source) => {
      const name = source.split('/').pop() ?? '';
      return !NOT_COPIED.has(name) && !name.endsWith('.log');
    },
  });
  const workspaceDirs = [
    '.',
    ...['packages', 'services'].flatMap((group) =>
      readdirSync(join(REPO_ROOT, group)).map((name) => join(group, name)),
    ),
    'test',
  ];
  // ensure-deps would run `npm ci` in the copy, which would empty the shared, linked node_modules.
  const installed = statSync(join(REPO_ROOT, 'node_modules', '.package-lock.json')).mtimeMs;
  if (statSync(join(directory, 'package-lock.json')).mtimeMs > installed) {
    await rm(directory, { recursive: true, force: true });
    throw new Error('node_modules is older than package-lock.json: run `npm ci` before the end-to-end tests');
  }
  for (const workspace of workspaceDirs) {
    const modules = join(REPO_ROOT, workspace, 'node_modules');
    if (existsSync(modules)) await symlink(modules, join(directory, workspace, 'node_modules'));
  }
  return directory;
}

export interface LocalStack {
  directory: string;
  url: string;
  credentials: StackCredentials;
  /** npm's pid: the process a developer's terminal runs. */
  pid: number;
  output(): string;
  /** Every process below npm right now. */
  descendants(): number[];
  /** What Ctrl-C in a terminal does: SIGINT to the whole foreground process group. */
  interrupt(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What a process manager does: SIGTERM to npm alone, which passes it on to the stack. */
  terminate(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** A signal to npm's whole process group (npm, its shell and the supervisor), as a session leader's exit sends. */
  signalGroup(signal: NodeJS.Signals): void;
  /** Closes the read ends of npm's stdout and stderr, as a parent that exits does: later writes get EPIPE. */
  closeOutput(): void;
  /** Kills anything still running and, unless kept for a second start, removes the copy. */
  dispose(options?: { keepDirectory?: boolean }): Promise<void>;
}

/** Runs `npm start` in a fresh copy of the repository, or again in `directory` (a second start). */
export async function startLocalStack(
  extraEnv: Record<string, string> = {},
  { directory: reuse }: { directory?: string } = {},
): Promise<LocalStack> {
  const directory = reuse ?? (await copyRepository());
  const port = await freePort();
  const env: NodeJS.ProcessEnv = { ...process.env, WIZARD_PORT: String(port), ...extraEnv };
  // The stack must start its own broker and embedded database, whatever the test runner's environment says.
  delete env.NATS_URL;
  delete env.DATABASE_URL;
  const child: ChildProcess = spawn('npm', ['start'], {
    cwd: directory,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const append = (chunk: Buffer) => {
    output += chunk.toString();
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  void exited.then((value) => {
    exit = value;
  });
  const pid = child.pid as number;
  const seen = new Set<number>();
  const descendants = () => {
    const now = descendantsOf(pid);
    for (const descendant of now) seen.add(descendant);
    return now;
  };

  const stack: LocalStack = {
    directory,
    url: `http://127.0.0.1:${port}`,
    credentials: undefined as unknown as StackCredentials,
    pid,
    output: () => output,
    descendants,
    interrupt: async () => {
      descendants();
      killQuietly(-pid, 'SIGINT');
      return exited;
    },
    terminate: async () => {
      descendants();
      killQuietly(pid, 'SIGTERM');
      return exited;
    },
    signalGroup: (signal) => {
      descendants();
      killQuietly(-pid, signal);
    },
    closeOutput: () => {
      child.stdout?.destroy();
      child.stderr?.destroy();
    },
    dispose: async ({ keepDirectory = false } = {}) => {
      descendants();
      if (!exit) killQuietly(-pid, 'SIGKILL');
      for (const descendant of seen) if (isAlive(descendant)) killQuietly(-descendant, 'SIGKILL');
      for (const descendant of seen) if (isAlive(descendant)) killQuietly(descendant, 'SIGKILL');
      if (!exit) await exited;
      if (!keepDirectory) await rm(directory, { recursive: true, force: true });
    },
  };

  try {
    await until(
      () => {
        if (exit) throw new Error(`npm start exited (${JSON.stringify(exit)}) before it was up:\n${output}`);
        descendants();
        return output.includes('wizard-stream is running');
      },
      { timeoutMs: 120_000, intervalMs: 100, what: 'npm start to print "wizard-stream is running"' },
    );
    stack.credentials = JSON.parse(
      await readFile(join(directory, '.data', 'credentials.json'), 'utf8'),
    ) as StackCredentials;
  } catch (error) {
    await stack.dispose();
    throw new Error(`${(error as Error).message}\n--- npm start output ---\n${output}`);
  }
  return stack;
}

/** The gateways as npm start printed them: URL, port and pid of each. */
export function printedGateways(output: string): { url: string; port: number; pid: number }[] {
  return [...output.matchAll(/stream-gateway-\d+\s+(http:\/\/127\.0\.0\.1:(\d+))\s+pid (\d+)/g)].map(
    (match) => ({
      url: match[1] as string,
      port: Number(match[2]),
      pid: Number(match[3]),
    }),
  );
}
