import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './manifests.js';

const run = promisify(execFile);

/** Builds a service's container bundle exactly as its Dockerfile does. */
export async function buildBundle(service: 'write-api' | 'stream-gateway', outdir: string): Promise<void> {
  await run(process.execPath, [join(REPO_ROOT, 'scripts', 'build-bundles.mjs'), service, outdir], {
    cwd: REPO_ROOT,
  });
}

export interface BundleProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
}

/** Runs `node <args>` inside a bundle directory, as the image's CMD does in /app, with only the given env. */
export function runBundle(dir: string, args: string[], env: Record<string, string>): BundleProcess {
  const child = spawn(process.execPath, args, {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, output: () => output };
}

/** Stops a bundle process if it still runs; resolves with its exit code. */
export async function stopBundle(process: BundleProcess | undefined): Promise<number | null | undefined> {
  if (!process) return undefined;
  if (process.child.exitCode === null && process.child.signalCode === null) process.child.kill('SIGTERM');
  return process.exited;
}
