import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/manifests.js';

/** runc, this machine's rlimits, k8s-file logs: see the file. */
export const CONTAINERS_CONF = join(REPO_ROOT, 'deploy', 'podman', 'containers.conf');

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion; never throws for a non-zero exit (callers say what failed). */
export function runCommand(
  command: string,
  args: string[],
  {
    input,
    env,
    cwd,
    user,
    timeoutMs = 120_000,
  }: {
    input?: string;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    /** Run as this account (only root may). */
    user?: { uid: number; gid: number } | undefined;
    timeoutMs?: number;
  } = {},
): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      env: env ?? process.env,
      cwd,
      ...(user ?? {}),
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-50_000);
    });
    const timer = setTimeout(() => {
      stderr += `\n(killed after ${timeoutMs} ms)`;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, stdout, stderr: `${stderr}${error.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) {
      // A command that exits without reading its input must not crash this process with EPIPE.
      child.stdin?.on('error', () => {});
      child.stdin?.end(input);
    }
  });
}

/** `podman <args>` with this repository's containers.conf; resolves whatever the exit code. */
export function tryPodman(
  args: string[],
  options: { input?: string; timeoutMs?: number } = {},
): Promise<CommandResult> {
  return runCommand('podman', args, { ...options, env: { ...process.env, CONTAINERS_CONF } });
}

/** `podman <args>`; throws with the command and its stderr on a non-zero exit. Resolves with stdout. */
export async function podman(args: string[], options: { input?: string; timeoutMs?: number } = {}) {
  const result = await tryPodman(args, options);
  if (result.code !== 0) {
    throw new Error(
      `podman ${args.join(' ')} exited with ${result.code}:\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`,
    );
  }
  return result.stdout;
}

/** `podman <kind> inspect` parsed; one object per name. */
// biome-ignore lint/suspicious/noExplicitAny: podman's inspect output is read field by field by the callers
export async function inspect(kind: 'container' | 'pod' | 'network' | 'image', name: string): Promise<any> {
  // `pod inspect` of one pod prints an object in podman 4, the others an array.
  const parsed = JSON.parse(await podman([kind, 'inspect', name]));
  return Array.isArray(parsed) ? parsed[0] : parsed;
}
