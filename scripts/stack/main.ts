import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type Child, Supervisor } from './children.js';
import { startEdgeProxy } from './edge-proxy.js';
import { localNatsLogins, NATS_TLS_VARIABLES, writeLocalNatsConfig } from './nats-config.js';
import { freePort, portIsFree, waitForHealthy, waitForPort } from './net.js';
import { terminalOutput } from './output.js';
import {
  loadOrCreateSecrets,
  readCredentials,
  type StackCredentials,
  stackPaths,
  type TeamCredential,
  writeJson,
} from './state.js';

const HOST = '127.0.0.1';
const GATEWAY_COUNT = 2;
const GATEWAY_NAMES = Array.from({ length: GATEWAY_COUNT }, (_, index) => `stream-gateway-${index + 1}`);
/** A local Ctrl-C should not wait the production 10 s drain unless asked to. */
const LOCAL_DRAIN_MS = 2000;
const STARTUP_TIMEOUT_MS = 90_000;
const NATS_SERVER_PATHS = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', '/usr/bin/nats-server'];

/** Variables the stack assigns itself for each service; everything else in the environment passes through. */
const ASSIGNED = ['PORT', 'HOST', 'WRITE_API_URL', 'INTERNAL_PORT', 'WRITE_API_INTERNAL_URL'] as const;

export interface LocalStackOptions {
  root: string;
  env: NodeJS.ProcessEnv;
}

class StackError extends Error {}

const { print } = terminalOutput();

/** Signals that mean "stop": Ctrl-C, a process manager's stop, and the terminal closing. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
/** How long the edge may take to close before the children are stopped anyway. */
const EDGE_CLOSE_MS = 2000;

function parsePort(value: string | undefined, fallback: number): number {
  if (value === undefined || value.trim() === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    throw new StackError(`WIZARD_PORT=${JSON.stringify(value)} is not a TCP port (1-65535)`);
  }
  return port;
}

function runSeed(
  root: string,
  env: NodeJS.ProcessEnv,
): Promise<{ teams: TeamCredential[]; seeded: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'scripts/stack/seed.ts')], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new StackError(`migrations/seeding failed (exit ${code}):\n${stderr.trim()}`));
        return;
      }
      const last = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new StackError(`seeding printed no result:\n${stdout}\n${stderr}`));
      }
    });
  });
}

/**
 * `npm start`: nats-server (unless NATS_URL), write-api on PGlite in .data (unless DATABASE_URL), two
 * stream-gateways and the edge proxy on WIZARD_PORT. Runs until SIGINT/SIGTERM, then stops every child.
 */
export async function runLocalStack({ root, env }: LocalStackOptions): Promise<void> {
  const paths = stackPaths(root);
  let shuttingDown: Promise<void> | undefined;
  let edgeClose: (() => Promise<void>) | undefined;
  let started = false;

  const supervisor = new Supervisor(print, (child: Child) => {
    print(
      `[stack] ${child.name} (pid ${child.pid}) exited unexpectedly (code ${child.exit?.code}, signal ${child.exit?.signal})`,
    );
    if (!started) return;
    if (child.name === 'nats-server' || child.name === 'write-api') {
      print(`[stack] the stack cannot work without ${child.name}; stopping`);
      void shutdown(1);
    } else {
      print('[stack] the edge proxy keeps routing streams to the gateways that are still up');
    }
  });

  const drainMs = env.DRAIN_MS || String(LOCAL_DRAIN_MS);
  // The children get the gateways' drain plus a margin to stop (a DRAIN_MS they refuse: the local default).
  const stopTimeoutMs = (Number(drainMs) >= 0 ? Number(drainMs) : LOCAL_DRAIN_MS) + 5000;
  const shutdown = (exitCode: number): Promise<void> => {
    shuttingDown ??= (async () => {
      print('\n[stack] stopping…');
      await withinMs(
        EDGE_CLOSE_MS,
        edgeClose?.().catch(() => {}),
      );
      await supervisor.stopAll([GATEWAY_NAMES, ['write-api'], ['nats-server']], stopTimeoutMs);
      print('[stack] stopped');
      process.exit(exitCode);
    })();
    return shuttingDown;
  };
  let signals = 0;
  const onSignal = () => {
    signals++;
    if (signals > 1) {
      print('[stack] second interrupt: killing everything now');
      supervisor.killAll();
      return;
    }
    void shutdown(0);
  };
  // A signal to the whole process group (the terminal's Ctrl-C, or its closing) reaches this process only:
  // the children lead their own groups, so it is this process that stops them, once or twice signalled.
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  // Children lead their own process groups, so nothing else would stop them if this process failed.
  process.on('uncaughtException', (error) => {
    print(`[stack] unexpected error: ${error.stack ?? error.message}`);
    void shutdown(1);
  });
  process.on('exit', () => supervisor.killAll());
  // `npm start` stopped with SIGTERM: npm and its shell exit without passing the signal on, and this
  // process is re-parented. Treat that as the stop it was meant to be.
  const parentPid = process.ppid;
  setInterval(() => {
    if (process.ppid === parentPid) return;
    print('[stack] the process that started npm start is gone');
    void shutdown(0);
  }, 500).unref();

  try {
    const wizardPort = parsePort(env.WIZARD_PORT, 8080);
    if (!(await portIsFree(wizardPort, HOST))) {
      throw new StackError(
        `port ${wizardPort} is taken; set WIZARD_PORT to a free port (e.g. WIZARD_PORT=8090 npm start)`,
      );
    }
    const secrets = await loadOrCreateSecrets(paths.secrets);
    const base: NodeJS.ProcessEnv = { ...env };
    for (const name of ASSIGNED) delete base[name];
    base.STREAM_TOKEN_SECRET = env.STREAM_TOKEN_SECRET || secrets.stream_token_secret;
    base.INTERNAL_API_TOKEN = env.INTERNAL_API_TOKEN || secrets.internal_api_token;
    base.LOG_LEVEL = env.LOG_LEVEL || 'warn';
    base.DRAIN_MS = drainMs;
    if (!env.DATABASE_URL) base.PGLITE_DIR = paths.pgliteDir;
    const database = env.DATABASE_URL
      ? 'PostgreSQL (DATABASE_URL)'
      : `PGlite in ${relative(root, paths.pgliteDir)}`;

    // The seed step checks that the database still knows the saved keys, and seeds them anew when not.
    // It is skipped only where that check would cost a PGlite start (seconds) and cannot fail: the saved
    // teams and the PGlite directory they were seeded into are both still there. write-api migrates on
    // every start by itself.
    const previous = await readCredentials(paths.credentials);
    let teams: TeamCredential[];
    if (previous && previous.teams.length >= 2 && !env.DATABASE_URL && existsSync(paths.pgliteDir)) {
      teams = previous.teams;
      print(`[stack] reusing ${database} and the teams in ${relative(root, paths.credentials)}`);
    } else {
      print(`[stack] migrating ${database} and checking the two local teams…`);
      const seed = await runSeed(root, { ...base, CREDENTIALS_FILE: paths.credentials });
      teams = seed.teams;
      print(
        seed.seeded
          ? '[stack] seeded two teams with read+write API keys'
          : '[stack] the database already knew the saved teams',
      );
    }

    let natsUrl = env.NATS_URL;
    let natsChild: Child | undefined;
    if (!natsUrl) {
      const natsBinary = NATS_SERVER_PATHS.find((path) => existsSync(path)) ?? 'nats-server';
      const natsPort = await freePort();
      const natsConfig = join(paths.dataDir, 'nats.conf');
      await writeLocalNatsConfig(natsConfig, secrets);
      natsChild = supervisor.start({
        name: 'nats-server',
        command: natsBinary,
        args: ['-c', natsConfig, '-a', HOST, '-p', String(natsPort)],
        cwd: root,
        env: { PATH: env.PATH ?? '' },
      });
      natsUrl = `nats://${HOST}:${natsPort}`;
      const nats = natsChild;
      await waitForPort(natsPort, { timeoutMs: 10_000, gaveUp: () => exitReason(nats) });
    }
    base.NATS_URL = natsUrl;
    // Our own nats-server gets the logins of .data/secrets.json; the user's NATS_URL keeps the user's NATS_* settings.
    const natsLogins = natsChild ? localNatsLogins(secrets) : undefined;
    if (natsLogins) for (const name of NATS_TLS_VARIABLES) delete base[name];

    const tsxService = (name: string, entry: string, port: number, extra: NodeJS.ProcessEnv = {}) =>
      supervisor.start({
        name,
        command: process.execPath,
        args: ['--import', 'tsx', join(root, entry)],
        cwd: root,
        env: { ...base, ...extra, PORT: String(port), HOST },
      });

    const writeApiPort = await freePort();
    const writeApiUrl = `http://${HOST}:${writeApiPort}`;
    // The gateways' re-snapshot listener, which the edge never routes to (docs/operations.md#security).
    const internalPort = await freePort();
    const writeApi = tsxService('write-api', 'services/write-api/src/main.ts', writeApiPort, {
      ...natsLogins?.writeApi,
      INTERNAL_PORT: String(internalPort),
    });
    await waitForHealthy(`${writeApiUrl}/healthz`, {
      timeoutMs: STARTUP_TIMEOUT_MS,
      gaveUp: () => exitReason(writeApi),
    });

    const gateways: { child: Child; url: string }[] = [];
    for (const name of GATEWAY_NAMES) {
      const port = await freePort();
      const child = tsxService(name, 'services/stream-gateway/src/main.ts', port, {
        WRITE_API_URL: writeApiUrl,
        ...natsLogins?.gateway,
        WRITE_API_INTERNAL_URL: `http://${HOST}:${internalPort}`,
      });
      gateways.push({ child, url: `http://${HOST}:${port}` });
    }
    for (const gateway of gateways) {
      await waitForHealthy(`${gateway.url}/healthz`, {
        timeoutMs: STARTUP_TIMEOUT_MS,
        gaveUp: () => exitReason(gateway.child),
      });
    }

    const url = `http://${HOST}:${wizardPort}`;
    const credentials: StackCredentials = {
      url,
      write_api: writeApiUrl,
      gateways: gateways.map((gateway) => gateway.url),
      teams,
    };
    await writeJson(paths.credentials, credentials);

    const edge = await startEdgeProxy({
      host: HOST,
      port: wizardPort,
      writeApiUrl,
      gatewayUrls: credentials.gateways,
      dashboardDir: join(root, 'services/dashboard/dist'),
      devCredentials: () => ({ url, teams: credentials.teams }),
      log: print,
    });
    edgeClose = edge.close;
    started = true;
    printSummary(root, credentials, {
      database,
      natsUrl,
      natsPid: natsChild?.pid,
      writeApiPid: writeApi.pid,
      gatewayPids: gateways.map((gateway) => gateway.child.pid),
    });
  } catch (error) {
    print(`[stack] failed to start: ${error instanceof Error ? error.message : String(error)}`);
    for (const child of supervisor.all) {
      if (child.exit && child.tail()) print(`[stack] last output of ${child.name}:\n${child.tail()}`);
    }
    await shutdown(1);
  }
}

/** Waits for `work`, but no longer than `ms`. */
async function withinMs(ms: number, work: Promise<unknown> | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([work, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

function exitReason(child: Child): string | undefined {
  if (!child.exit) return undefined;
  return `${child.name} exited during start (code ${child.exit.code}, signal ${child.exit.signal})`;
}

function printSummary(
  root: string,
  credentials: StackCredentials,
  details: {
    database: string;
    natsUrl: string;
    natsPid: number | undefined;
    writeApiPid: number;
    gatewayPids: number[];
  },
): void {
  const [team] = credentials.teams;
  const lines = [
    '',
    'wizard-stream is running',
    '',
    `  dashboard + API   ${credentials.url}   (edge proxy: /…/stream/ → gateways, rest of /api → write-api)`,
    `  write-api         ${credentials.write_api}   pid ${details.writeApiPid}   ${details.database}`,
    ...credentials.gateways.map(
      (gateway, index) => `  ${GATEWAY_NAMES[index]}  ${gateway}   pid ${details.gatewayPids[index]}`,
    ),
    `  nats-server       ${details.natsUrl}${details.natsPid ? `   pid ${details.natsPid}` : '   (external, NATS_URL)'}`,
    `  credentials       ${relative(root, stackPaths(root).credentials)}   teams ${credentials.teams.map((t) => t.id).join(', ')}`,
    '',
    'Push a session:',
    `  curl -X POST ${credentials.url}/api/projects/${team?.id}/wizard/sessions/ \\`,
    `    -H "Authorization: Bearer ${team?.api_key}" -H "Content-Type: application/json" \\`,
    `    -d '{"session_id":"demo-1","workflow_id":"demo","skill_id":"setup","started_at":"${new Date().toISOString()}","run_phase":"running","tasks":[{"id":"t1","title":"Install the SDK","status":"in_progress"}]}'`,
    `Watch it live: ${credentials.url}/?project=${team?.id}&workflow=demo&connect=1`,
    '',
    'Press Ctrl-C to stop everything.',
  ];
  print(lines.join('\n'));
}
