import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { chown, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from '@wizard-stream/testkit';

const run = promisify(execFile);

/** The newest PostgreSQL server binaries installed (Debian's layout). */
function binDir(): string {
  const versions = readdirSync('/usr/lib/postgresql')
    .filter((name) => /^\d+$/.test(name))
    .sort((a, b) => Number(b) - Number(a));
  if (!versions[0]) throw new Error('no PostgreSQL server under /usr/lib/postgresql');
  return `/usr/lib/postgresql/${versions[0]}/bin`;
}

/**
 * A throwaway PostgreSQL cluster owned by one test file (initdb in a temp dir, on a free port): the
 * shared server must not be restarted or paused under other tests. PostgreSQL refuses to run as root,
 * so as root its commands run as the `postgres` user.
 */
export class OwnPostgres {
  private paused: number[] = [];

  private constructor(
    readonly dataDir: string,
    readonly port: number,
    private readonly asRoot: boolean,
  ) {}

  static async create(): Promise<OwnPostgres> {
    const dataDir = await mkdtemp(join(tmpdir(), 'wizard-own-pg-'));
    const asRoot = process.getuid?.() === 0;
    if (asRoot) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      const { stdout: group } = await run('id', ['-g', 'postgres']);
      await chown(dataDir, Number(stdout.trim()), Number(group.trim()));
    }
    const cluster = new OwnPostgres(dataDir, await freePort(), asRoot);
    await cluster.pg('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync']);
    await cluster.start();
    return cluster;
  }

  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  private pg(command: string, args: string[]) {
    const binary = join(binDir(), command);
    return this.asRoot ? run('runuser', ['-u', 'postgres', '--', binary, ...args]) : run(binary, args);
  }

  /** Starts the server and resolves once it accepts connections. */
  async start(): Promise<void> {
    await this.pg('pg_ctl', [
      '-D',
      this.dataDir,
      '-l',
      join(this.dataDir, 'server.log'),
      '-o',
      `-p ${this.port} -k ${this.dataDir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      '-w',
      'start',
    ]);
  }

  /** A fast shutdown: sessions are terminated, as in a restart or failover. */
  async stop(): Promise<void> {
    await this.pg('pg_ctl', ['-D', this.dataDir, '-m', 'fast', '-w', 'stop']);
  }

  /** Freezes the postmaster and every backend (SIGSTOP): a database that hangs instead of failing. */
  async pause(): Promise<void> {
    const postmaster = Number((await readFile(join(this.dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);
    const { stdout } = await run('ps', ['-o', 'pid=', '--ppid', String(postmaster)]);
    this.paused = [postmaster, ...stdout.split('\n').filter(Boolean).map(Number)];
    for (const pid of this.paused) process.kill(pid, 'SIGSTOP');
  }

  resume(): void {
    for (const pid of this.paused) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Already gone.
      }
    }
    this.paused = [];
  }

  /** Resumes, stops and deletes the cluster. */
  async destroy(): Promise<void> {
    this.resume();
    await this.pg('pg_ctl', ['-D', this.dataDir, '-m', 'immediate', '-w', 'stop']).catch(() => {});
    await rm(this.dataDir, { recursive: true, force: true });
  }
}
