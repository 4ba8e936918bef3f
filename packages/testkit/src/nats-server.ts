import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { freePort } from './ports.js';

export const NATS_SERVER_BINARY = [
  '/usr/sbin/nats-server',
  '/usr/local/bin/nats-server',
  '/usr/bin/nats-server',
].find((path) => existsSync(path));

export interface NatsServerOptions {
  port?: number;
  /** Cluster routing: this node's cluster port and the routes to its peers. */
  cluster?: { name: string; port: number; routes: string[] };
  /** Clients learn no other cluster node, so they stay disconnected while this one is down. */
  noAdvertise?: boolean;
  serverName?: string;
  /** A nats-server config file (users, TLS, …); the port and cluster options above override its own. */
  configFile?: string;
  /** The server's environment: what a config file's `$NAME` references resolve to. */
  env?: Record<string, string>;
}

/** A nats-server process owned by a test: stop and restart it to simulate an outage. */
export class NatsServer {
  private process: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly port: number,
    private readonly options: NatsServerOptions,
  ) {}

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const server = new NatsServer(options.port ?? (await freePort()), options);
    await server.restart();
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.process !== undefined;
  }

  /** Starts the process (again) on the same port and resolves once it accepts connections. */
  async restart(): Promise<void> {
    if (this.process) return;
    if (!NATS_SERVER_BINARY) throw new Error('nats-server is not installed (apt-get install -y nats-server)');
    const args = [
      ...(this.options.configFile ? ['-c', this.options.configFile] : []),
      ...['-a', '127.0.0.1', '-p', String(this.port)],
    ];
    if (this.options.serverName) args.push('--name', this.options.serverName);
    if (this.options.cluster) {
      const { name, port, routes } = this.options.cluster;
      args.push('--cluster_name', name, '--cluster', `nats://127.0.0.1:${port}`);
      if (routes.length > 0) args.push('--routes', routes.join(','));
    }
    if (this.options.noAdvertise) args.push('--no_advertise=true');
    const child = spawn(NATS_SERVER_BINARY, args, {
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(this.options.env && { env: { PATH: process.env.PATH ?? '', ...this.options.env } }),
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    this.process = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const exitedEarly = this.exited.then(() => {
      throw new Error(`nats-server on port ${this.port} exited at start: ${stderr}`);
    });
    await Promise.race([waitForPort(this.port, 10_000), exitedEarly]);
  }

  /** Stops the process and resolves once it has exited. */
  async stop(): Promise<void> {
    const child = this.process;
    if (!child) return;
    this.process = undefined;
    child.kill('SIGKILL');
    await this.exited;
  }
}

export async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connectTcp({ host: '127.0.0.1', port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline)
      throw new Error(`nothing listened on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
