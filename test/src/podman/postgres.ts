import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort } from '@wizard-stream/testkit';
import { runCommand } from './podman.js';

/** The newest PostgreSQL server binaries installed from Debian's packages, if any. */
export function postgresBinDir(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root)
    .filter((entry) => existsSync(join(root, entry, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(root, versions[0], 'bin');
}

/** PostgreSQL refuses to run as root: run it as the `postgres` account then. */
async function serverAccount(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const [uid, gid] = await Promise.all([
    runCommand('id', ['-u', 'postgres']),
    runCommand('id', ['-g', 'postgres']),
  ]);
  if (uid.code !== 0 || gid.code !== 0) throw new Error('running as root, and there is no postgres account');
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/**
 * A PostgreSQL server of its own, started from this machine's binaries in `directory`, listening only on
 * `listenAddress` (the pods' gateway), with one database `wizard` owned by a password-authenticated,
 * non-superuser role `wizard` that may connect from `allowedCidr` only. `stop()` removes it all.
 */
export class ThrowawayPostgres {
  private constructor(
    private readonly server: ChildProcess,
    private readonly exited: Promise<void>,
    private readonly directory: string,
    /** The DATABASE_URL the pods get. */
    readonly url: string,
    readonly output: () => string,
  ) {}

  static async start(options: {
    directory: string;
    listenAddress: string;
    allowedCidr: string;
  }): Promise<ThrowawayPostgres> {
    const bin = postgresBinDir();
    if (!bin) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql');
    const account = await serverAccount();
    const { directory } = options;
    const data = join(directory, 'data');
    await mkdir(directory, { recursive: true });
    if (account) await chown(directory, account.uid, account.gid);
    const asServer = account ? { uid: account.uid, gid: account.gid } : {};
    const initdb = await runCommand(
      join(bin, 'initdb'),
      [
        '-D',
        data,
        '-U',
        'postgres',
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '--no-sync',
        '-E',
        'UTF8',
      ],
      { user: account },
    );
    if (initdb.code !== 0)
      throw new Error(`initdb exited with ${initdb.code}:\n${initdb.stdout}${initdb.stderr}`);
    await writeFile(
      join(data, 'pg_hba.conf'),
      `local all postgres trust\nhost wizard wizard ${options.allowedCidr} scram-sha-256\n`,
    );
    const password = randomBytes(16).toString('hex');

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const server = spawn(
        join(bin, 'postgres'),
        [
          '-D',
          data,
          '-p',
          String(port),
          '-c',
          `listen_addresses=${options.listenAddress}`,
          '-c',
          `unix_socket_directories=${directory}`,
          '-c',
          'fsync=off',
          '-c',
          'max_connections=100',
        ],
        { ...asServer, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
      const ready = new Promise<boolean>((resolve) => {
        const onData = (chunk: Buffer) => {
          output = (output + chunk.toString()).slice(-20_000);
          if (output.includes('database system is ready to accept connections')) resolve(true);
        };
        server.stdout.on('data', onData);
        server.stderr.on('data', onData);
        void exited.then(() => resolve(false));
      });
      const timer = setTimeout(() => server.kill('SIGKILL'), 30_000);
      const started = await ready;
      clearTimeout(timer);
      if (!started) {
        // Another process took the port between the check and the bind: try another one.
        if (output.includes('could not bind') && attempt < 3) continue;
        throw new Error(`postgres did not start:\n${output}`);
      }
      const setup = await runCommand(
        join(bin, 'psql'),
        [
          '-h',
          directory,
          '-p',
          String(port),
          '-U',
          'postgres',
          '-v',
          'ON_ERROR_STOP=1',
          '-c',
          `create role wizard login password '${password}'`,
          '-c',
          'create database wizard owner wizard',
        ],
        { env: { ...process.env, PGCONNECT_TIMEOUT: '10' } },
      );
      const database = new ThrowawayPostgres(
        server,
        exited,
        directory,
        `postgres://wizard:${password}@${options.listenAddress}:${port}/wizard`,
        () => output,
      );
      if (setup.code !== 0) {
        await database.stop();
        throw new Error(`creating the wizard role and database failed:\n${setup.stderr}`);
      }
      return database;
    }
  }

  get pid(): number | undefined {
    return this.server.pid;
  }

  /** Fast shutdown (SIGINT), then removes its directory. */
  async stop(): Promise<void> {
    if (this.server.exitCode === null && this.server.signalCode === null) {
      const timer = setTimeout(() => this.server.kill('SIGKILL'), 10_000);
      this.server.kill('SIGINT');
      await this.exited;
      clearTimeout(timer);
    }
    await rm(this.directory, { recursive: true, force: true });
  }
}
