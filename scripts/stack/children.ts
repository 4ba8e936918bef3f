import { type ChildProcess, spawn } from 'node:child_process';

export interface ChildSpec {
  name: string;
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export interface Child {
  name: string;
  pid: number;
  /** Set once the process has exited. */
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exited: Promise<void>;
  /** The last lines it printed, for a failure message. */
  tail(): string;
}

const TAIL_LINES = 40;

/**
 * Starts and stops the stack's processes. Each child leads its own process group (detached), so a stop
 * signal reaches the child's own children too, and the terminal's Ctrl-C reaches only this
 * supervisor, which then stops everything in order and waits for it.
 */
export class Supervisor {
  private readonly children: (Child & { process: ChildProcess })[] = [];
  private stopping = false;

  constructor(
    private readonly print: (line: string) => void,
    private readonly onUnexpectedExit: (child: Child) => void,
  ) {}

  get all(): readonly Child[] {
    return this.children;
  }

  start(spec: ChildSpec): Child {
    // A child started after stopAll() took its list would outlive the stop.
    if (this.stopping) throw new Error(`not starting ${spec.name}: the stack is stopping`);
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) throw new Error(`could not start ${spec.name} (${spec.command})`);
    const lines: string[] = [];
    const prefix = `[${spec.name}] `;
    const forward = (stream: NodeJS.ReadableStream | null) => {
      let partial = '';
      // The pipe may break when the child dies mid-write; its exit is what the supervisor acts on.
      stream?.on('error', () => {});
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        const parts = (partial + chunk).split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) {
          lines.push(line);
          if (lines.length > TAIL_LINES) lines.shift();
          this.print(prefix + line);
        }
      });
    };
    forward(child.stdout);
    forward(child.stderr);
    const record: Child & { process: ChildProcess } = {
      name: spec.name,
      pid: child.pid,
      exit: undefined,
      process: child,
      tail: () => lines.join('\n'),
      exited: new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          record.exit = { code, signal };
          // Whatever the child left behind in its group goes with it.
          killGroup(child.pid, 'SIGKILL');
          if (!this.stopping) this.onUnexpectedExit(record);
          resolve();
        });
      }),
    };
    child.once('error', (error) => this.print(`${prefix}failed to start: ${error.message}`));
    this.children.push(record);
    return record;
  }

  /**
   * Stops the children in groups, in order (edge-facing services first, the message bus last): SIGTERM
   * to each process group, SIGKILL after graceMs, and resolves once every child has exited.
   */
  async stopAll(order: readonly (readonly string[])[], graceMs: number): Promise<void> {
    this.stopping = true;
    const remaining = new Set(this.children);
    const stopGroup = async (group: (Child & { process: ChildProcess })[]) => {
      await Promise.all(
        group.map(async (child) => {
          remaining.delete(child);
          if (child.exit) return;
          killGroup(child.pid, 'SIGTERM');
          const timer = setTimeout(() => {
            this.print(`[stack] ${child.name} did not stop within ${graceMs} ms; killing it`);
            killGroup(child.pid, 'SIGKILL');
          }, graceMs);
          await child.exited;
          clearTimeout(timer);
        }),
      );
    };
    for (const names of order) {
      await stopGroup(this.children.filter((child) => names.includes(child.name)));
    }
    await stopGroup([...remaining]);
  }

  /** The second Ctrl-C: no more waiting. */
  killAll(): void {
    for (const child of this.children) if (!child.exit) killGroup(child.pid, 'SIGKILL');
  }
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
