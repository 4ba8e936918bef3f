import { type ChildProcess, execFile, fork, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitForPort } from '@wizard-stream/testkit';
import { type FanoutOptions, type FanoutResult, runFanout } from './gateway-load.js';
import { postJson } from './http-post.js';
import { childPids, sleep } from './proc-stats.js';

/**
 * The second peer: Pushpin (Debian's package) with its default configuration, zurl for its outbound
 * HTTP, and a GRIP origin (bench/pushpin/grip-origin.ts) that holds every request as an event stream
 * on one channel. Updates are published through Pushpin's HTTP publish endpoint in the `http-stream`
 * format, with the same DTO bytes as the gateway and nchan receive.
 *
 * Nothing in /etc/pushpin/pushpin.conf is changed: the only difference from a plain `pushpin` is the
 * `--route` argument (which overrides the routes file, whose default `* test` points at Pushpin's
 * built-in test handler) and `--logfile`. Its ports are the defaults (7999 HTTP, 5560–5563 handler,
 * 5561 HTTP publish): a run fails with a message, rather than moving them, if something else holds them.
 */

const PUSHPIN = '/usr/bin/pushpin';
const ZURL = '/usr/bin/zurl';
const CONFIG = '/etc/pushpin/pushpin.conf';
const ZURL_CONFIG = '/etc/zurl.conf';
const HTTP_PORT = 7999;
const PUBLISH_PORT = 5561;
const HANDLER_PORTS = [5560, 5562, 5563];
const CHANNEL = 'bench';

export interface PushpinSetup {
  version: string;
  config: string;
  /** The default settings that bound what it can do here, as read from the config file. */
  defaults: Record<string, string>;
  commandLine: string[];
  zurlCommandLine: string[];
  /** Lines changed from the packaged configuration: none. */
  changedConfigLines: string[];
}

export type PushpinRun = FanoutResult & { setup: PushpinSetup };

function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function publish(agent: Agent, content: string): Promise<void> {
  const body = JSON.stringify({
    items: [{ channel: CHANNEL, formats: { 'http-stream': { content } } }],
  });
  return postJson(agent, PUBLISH_PORT, '/publish/', body, 'pushpin publish');
}

async function readDefaults(): Promise<Record<string, string>> {
  const wanted = ['http_port', 'client_maxconn', 'client_buffer_size', 'message_rate', 'message_hwm'];
  const defaults: Record<string, string> = {};
  for (const line of (await readFile(CONFIG, 'utf8')).split('\n')) {
    const [name, value] = line.split('=', 2);
    if (name && value !== undefined && wanted.includes(name.trim())) defaults[name.trim()] = value.trim();
  }
  return defaults;
}

async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(timer);
}

function startOrigin(): Promise<{ child: ChildProcess; port: number }> {
  const entry = new URL('./pushpin/grip-origin.ts', import.meta.url).pathname;
  const child = fork(entry, [CHANNEL], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = output.match(/ORIGIN_PORT (\d+)/);
      if (match) resolve({ child, port: Number(match[1]) });
    });
    child.once('exit', (code) => reject(new Error(`GRIP origin exited with ${code}`)));
  });
}

export async function benchPushpin(
  options: FanoutOptions,
  dtoWithVersion: (version: number) => string,
): Promise<PushpinRun> {
  if (!existsSync(PUSHPIN) || !existsSync(ZURL)) {
    throw new Error(`Pushpin is not installed (${PUSHPIN}, ${ZURL}): apt-get install -y pushpin zurl`);
  }
  for (const port of [HTTP_PORT, PUBLISH_PORT, ...HANDLER_PORTS]) {
    if (await portInUse(port)) throw new Error(`port ${port} (a Pushpin default) is in use`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'wizard-pushpin-'));
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  let zurl: ChildProcess | undefined;
  let pushpin: ChildProcess | undefined;
  let origin: ChildProcess | undefined;
  try {
    const started = await startOrigin();
    origin = started.child;
    const frame = (version: number) => `data: ${dtoWithVersion(version)}\n\n`;
    origin.send({ frame: frame(1) });

    // zurl's sockets live in /var/run/zurl (named in Pushpin's internal.conf); the package does not make it.
    await mkdir('/var/run/zurl', { recursive: true });
    const zurlCommandLine = [ZURL, `--config=${ZURL_CONFIG}`];
    zurl = spawn(zurlCommandLine[0] as string, zurlCommandLine.slice(1), {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const commandLine = [
      PUSHPIN,
      `--config=${CONFIG}`,
      `--route=* 127.0.0.1:${started.port}`,
      `--logfile=${join(dir, 'pushpin.log')}`,
    ];
    pushpin = spawn(commandLine[0] as string, commandLine.slice(1), {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const runner = pushpin;
    await waitForPort(HTTP_PORT, 20_000);
    await waitForPort(PUBLISH_PORT, 20_000);
    // The runner's services (condure, pushpin-proxy, pushpin-handler) start one after the other.
    let services: number[] = [];
    for (let attempt = 0; attempt < 100 && services.length < 3; attempt++) {
      services = await childPids(runner.pid as number);
      if (services.length < 3) await sleep(100);
    }
    const setup: PushpinSetup = {
      version: (await promisify(execFile)(PUSHPIN, ['--version'])).stdout.trim(),
      config: `${CONFIG} (as packaged)`,
      defaults: await readDefaults(),
      commandLine,
      zurlCommandLine,
      changedConfigLines: [],
    };
    const zurlPid = zurl.pid as number;
    const session = await runFanout(
      {
        name: 'pushpin',
        host: '127.0.0.1',
        port: HTTP_PORT,
        path: '/stream',
        headers: { accept: 'text/event-stream' },
        pids: () => [runner.pid as number, ...services, zurlPid],
        publish: async (version) => {
          const content = frame(version);
          origin?.send({ frame: content });
          await publish(agent, content);
        },
      },
      options,
    );
    await session.close();
    return { ...session.result, setup };
  } finally {
    agent.destroy();
    await stop(pushpin);
    await stop(zurl);
    if (origin?.connected) origin.disconnect();
    await stop(origin);
    await rm(dir, { recursive: true, force: true });
  }
}
