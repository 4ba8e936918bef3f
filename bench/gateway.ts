import { availableParallelism, loadavg } from 'node:os';
import { BusConnection, publishSession } from '@wizard-stream/bus';
import { sessionSubject, sessionsUrl, streamUrl } from '@wizard-stream/contracts';
import { seedTeamWithMember } from '@wizard-stream/db';
import { createTestDatabase, NatsServer, type ServiceProcess, spawnService } from '@wizard-stream/testkit';
import { type FanoutOptions, type FanoutResult, type FanoutTarget, runFanout } from './gateway-load.js';
import { benchNchan } from './gateway-nchan.js';
import { round } from './stats.js';

/**
 * The fan-out benchmark (issue 3): one stream-gateway process, fed by its own nats-server and a real
 * write-api on a PostgreSQL bench database, against N raw SSE clients on one workflow; then nginx + nchan
 * with the same clients and rates. Updates are published straight on NATS (docs/wire-format.md#nats headers,
 * Wizard-Committed-At = send time) for controlled rates; a few upserts through write-api check the whole path.
 */

export interface GatewayBenchOptions extends FanoutOptions {
  endToEndUpserts: number;
}

export interface EndToEndResult {
  upserts: number;
  /** Per upsert: clients that received it, and the latest receipt after the POST was sent (ms). */
  delivered: { version: number; clients: number; lastClientMs: number }[];
  allDelivered: boolean;
}

export interface GatewayBenchResult {
  kind: 'gateway-fanout';
  date: string;
  machine: { cores: number; node: string; loadAverageAtStart: number[]; loadAverageAtEnd: number[] };
  options: GatewayBenchOptions;
  gateway: FanoutResult & { endToEnd: EndToEndResult };
  nchan: (FanoutResult & { workerProcesses: number; nginxVersion: string }) | { error: string };
}

const WORKFLOW = 'bench-fanout';
const INTERNAL_TOKEN = 'bench-internal-token-0123456789';

/** A session body as the wizard CLI pushes it. */
function sessionBody(sessionId: string, skillId: string, step: number): string {
  return JSON.stringify({
    session_id: sessionId,
    workflow_id: WORKFLOW,
    skill_id: skillId,
    started_at: new Date(Date.UTC(2026, 10, 25, 10, 0, step)).toISOString(),
    run_phase: 'running',
    tasks: [
      { id: '0', title: 'Install the SDK', status: 'completed' },
      { id: '1', title: `Instrument events (step ${step})`, status: 'in_progress' },
      { id: '2', title: 'Verify ingestion', status: 'pending' },
    ],
  });
}

async function upsert(writeApiUrl: string, teamId: number, apiKey: string, body: string): Promise<string> {
  const response = await fetch(sessionsUrl(writeApiUrl, teamId), {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body,
  });
  const text = await response.text();
  if (response.status !== 200 && response.status !== 201) {
    throw new Error(`upsert answered ${response.status}: ${text}`);
  }
  return text;
}

/** The DTO bytes with another version: `version` is the DTO's last field (docs/wire-format.md#the-session-dto). */
function withVersion(dto: string, version: number): string {
  const at = dto.lastIndexOf('"version":');
  if (at === -1 || !dto.endsWith('}')) throw new Error(`not a session DTO: ${dto.slice(0, 200)}`);
  return `${dto.slice(0, at)}"version":${version}}`;
}

async function endToEnd(
  session: Awaited<ReturnType<typeof runFanout>>,
  writeApiUrl: string,
  teamId: number,
  apiKey: string,
  clients: number,
  upserts: number,
): Promise<EndToEndResult> {
  const postedAt = new Map<number, number>();
  for (let step = 1; step <= upserts; step++) {
    const sentAt = Date.now();
    const dto = JSON.parse(
      await upsert(writeApiUrl, teamId, apiKey, sessionBody('bench-e2e', 'e2e', step)),
    ) as {
      version: number;
    };
    postedAt.set(dto.version, sentAt);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  const deadline = Date.now() + 10_000;
  let seen = await session.endToEnd();
  while (
    [...postedAt.keys()].some((version) => (seen.get(version)?.count ?? 0) < clients) &&
    Date.now() < deadline
  ) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    seen = await session.endToEnd();
  }
  const delivered = [...postedAt].map(([version, sentAt]) => {
    const entry = seen.get(version);
    return {
      version,
      clients: entry?.count ?? 0,
      lastClientMs: entry ? entry.latestAt - sentAt : Number.NaN,
    };
  });
  return { upserts, delivered, allDelivered: delivered.every((entry) => entry.clients === clients) };
}

async function benchGateway(
  options: GatewayBenchOptions,
): Promise<{ result: GatewayBenchResult['gateway']; dto: string }> {
  // A fresh database for the run, dropped at its end.
  const database = await createTestDatabase('postgres');
  const databaseUrl = database.url as string;
  const member = await seedTeamWithMember(database.db, {
    teamName: 'bench',
    email: 'bench-gateway@example.com',
  });

  const nats = await NatsServer.start();
  const started: ServiceProcess[] = [];
  const bus = new BusConnection({ url: nats.url, name: 'bench-publisher' });
  try {
    const writeApi = await spawnService('services/write-api/src/main.ts', {
      DATABASE_URL: databaseUrl,
      NATS_URL: nats.url,
      INTERNAL_API_TOKEN: INTERNAL_TOKEN,
      RATE_LIMIT_PER_MIN: '1000000000',
      LOG_LEVEL: 'warn',
    });
    started.push(writeApi);
    const gateway = await spawnService('bench/gateway-entry.ts', {
      NATS_URL: nats.url,
      WRITE_API_URL: writeApi.url,
      INTERNAL_API_TOKEN: INTERNAL_TOKEN,
      MAX_STREAMS: String(options.clients * 2),
      LOG_LEVEL: 'warn',
      NODE_OPTIONS: '--expose-gc',
      ...(process.env.BENCH_HEAP_SNAPSHOT_DIR && {
        BENCH_HEAP_SNAPSHOT_DIR: process.env.BENCH_HEAP_SNAPSHOT_DIR,
      }),
    });
    started.push(gateway);
    await bus.ready();

    // The session every client receives as its snapshot; live versions are published above it.
    const dto = await upsert(
      writeApi.url,
      member.teamId,
      member.apiKey,
      sessionBody('bench-fanout', 'load', 0),
    );
    const subject = sessionSubject(member.teamId, WORKFLOW, 'load');
    const url = new URL(streamUrl(gateway.url, member.teamId, WORKFLOW));
    const target: FanoutTarget = {
      name: 'stream-gateway',
      host: url.hostname,
      port: Number(url.port),
      path: `${url.pathname}${url.search}`,
      headers: { accept: 'text/event-stream', authorization: `Bearer ${member.apiKey}` },
      pids: () => [gateway.pid],
      publish: (version, sentAt) =>
        publishSession(bus, {
          subject,
          payload: withVersion(dto, version),
          sessionId: 'bench-fanout',
          version,
          committedAtMs: sentAt,
        }),
      settle: async () => {
        process.kill(gateway.pid, 'SIGUSR2');
      },
    };
    const session = await runFanout(target, options);
    try {
      const e2e = await endToEnd(
        session,
        writeApi.url,
        member.teamId,
        member.apiKey,
        session.result.connect.opened,
        options.endToEndUpserts,
      );
      console.log(`stream-gateway: end to end ${JSON.stringify(e2e)}`);
      if (process.env.BENCH_HEAP_SNAPSHOT_DIR)
        console.log(
          gateway
            .output()
            .split('\n')
            .filter((line) => line.startsWith('BENCH_MEMORY'))
            .join('\n'),
        );
      return { result: { ...session.result, endToEnd: e2e }, dto };
    } finally {
      await session.close();
    }
  } finally {
    await bus.close();
    for (const service of started.reverse()) await service.kill('SIGKILL');
    await nats.stop();
    await database.dispose();
  }
}

export async function benchFanout(options: GatewayBenchOptions): Promise<GatewayBenchResult> {
  const loadAverageAtStart = loadavg().map((value) => round(value, 2));
  const { result: gateway, dto } = await benchGateway(options);
  let nchan: GatewayBenchResult['nchan'];
  try {
    nchan = await benchNchan(options, (version) => withVersion(dto, version));
  } catch (error) {
    console.error(`nchan run failed: ${(error as Error).message}`);
    nchan = { error: (error as Error).message };
  }
  return {
    kind: 'gateway-fanout',
    date: new Date().toISOString(),
    machine: {
      cores: availableParallelism(),
      node: process.version,
      loadAverageAtStart,
      loadAverageAtEnd: loadavg().map((value) => round(value, 2)),
    },
    options,
    gateway,
    nchan,
  };
}

type NchanRun = Exclude<GatewayBenchResult['nchan'], { error: string }>;

function cell(value: number | undefined, unit = ''): string {
  return value === undefined || Number.isNaN(value) ? '–' : `${value}${unit}`;
}

/** The docs table: the gateway and nchan side by side, one row per rate, then connects and memory. */
export function gatewayMarkdown(result: GatewayBenchResult): string {
  const nchan: NchanRun | undefined = 'error' in result.nchan ? undefined : result.nchan;
  const { gateway } = result;
  const rows = gateway.rates.map((rate, index) => {
    const other = nchan?.rates[index];
    return (
      `| ${rate.updatesPerSecond} (${rate.achievedUpdatesPerSecond} / ${cell(other?.achievedUpdatesPerSecond)}) | ${rate.offeredDeliveriesPerSecond} ` +
      `| ${rate.deliveriesPerSecond} | ${rate.p50Ms} | ${rate.p99Ms} | ${rate.p999Ms} | ${rate.serverCpuPercent} % ` +
      `| ${cell(other?.deliveriesPerSecond)} | ${cell(other?.p50Ms)} | ${cell(other?.p99Ms)} | ${cell(other?.p999Ms)} | ${cell(other?.serverCpuPercent, ' %')} |`
    );
  });
  const e2e = gateway.endToEnd;
  return [
    '| updates/s (published: gateway / nchan) | offered deliveries/s | gateway deliveries/s | p50 ms | p99 ms | p999 ms | gateway CPU | nchan deliveries/s | p50 ms | p99 ms | p999 ms | nchan CPU |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    '',
    '| | stream-gateway | nginx + nchan | target |',
    '|---|---:|---:|---:|',
    `| streams opened (failed) | ${gateway.connect.opened} (${gateway.connect.failed}) | ${nchan ? `${nchan.connect.opened} (${nchan.connect.failed})` : '–'} | ${result.options.clients} |`,
    `| time to open all streams, with their first frame | ${gateway.connect.seconds} s | ${nchan ? `${nchan.connect.seconds} s` : '–'} | < 5 s for 10,000 |`,
    `| connects/s | ${gateway.connect.perSecond} | ${cell(nchan?.connect.perSecond)} | |`,
    `| server RSS idle → with all streams idle | ${round(gateway.memory.idleKiB / 1024, 1)} → ${round(gateway.memory.withClientsKiB / 1024, 1)} MiB | ${nchan ? `${round(nchan.memory.idleKiB / 1024, 1)} → ${round(nchan.memory.withClientsKiB / 1024, 1)} MiB` : '–'} | |`,
    `| RSS per idle connection | ${gateway.memory.perConnectionKiB} KiB | ${nchan ? `${nchan.memory.perConnectionKiB} KiB` : '–'} | ≤ 16 KiB |`,
    '',
    `End to end through write-api (${e2e.upserts} upserts on another session of the same workflow): ` +
      (e2e.allDelivered
        ? `every upsert reached all ${gateway.connect.opened} streams; the last stream had it ${e2e.delivered.map((entry) => entry.lastClientMs).join(', ')} ms after the POST was sent.`
        : `NOT every upsert reached every stream: ${e2e.delivered.map((entry) => `v${entry.version} ${entry.clients}`).join(', ')}.`),
    ...('error' in result.nchan ? ['', `nchan run failed: ${result.nchan.error}`] : []),
  ].join('\n');
}
