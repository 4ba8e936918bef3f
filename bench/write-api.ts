import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { seedTeamWithMember } from '@wizard-stream/db';
import { createTestDatabase, NatsServer, spawnService, type TestDatabase } from '@wizard-stream/testkit';
import { PgWaitSampler, type PgWaits } from './pg-waits.js';
import { type ProbeReport, probePhase } from './process-probe.js';
import { round, spread, summarize } from './stats.js';

const run = promisify(execFile);

export interface UpsertBenchOptions {
  concurrencies: number[];
  durationMs: number;
  warmupMs: number;
  /** Independent runs (a fresh database and write-api each); tables give their median and range. */
  runs: number;
}

export interface LevelResult {
  clients: number;
  upsertsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

type Spread = ReturnType<typeof spread>;

export interface LevelSummary {
  clients: number;
  upsertsPerSecond: Spread;
  p50Ms: Spread;
  p99Ms: Spread;
  errors: number;
  runs: LevelResult[];
}

/** What write-api's process and PostgreSQL went through during one measured level of one run. */
export interface LevelDiagnostics {
  run: number;
  clients: number;
  probe: ProbeReport;
  pgWaits: PgWaits;
}

export interface UpsertBenchResult {
  kind: 'write-api-upserts';
  date: string;
  machine: { cores: number; node: string; loadAverageAtStart?: number[] };
  durationMs: number;
  runs?: number;
  writeApi: LevelSummary[];
  pgbench: LevelSummary[];
  /** write-api upserts/s as a share of pgbench's at the same client count (medians). */
  ratio: { clients: number; percentOfCeiling: number }[];
  diagnostics?: LevelDiagnostics[];
}

/** Sessions each wrk thread cycles through; pgbench spreads its upserts over as many rows. */
const SESSIONS_PER_THREAD = 4096;
const wrkThreads = (clients: number) => Math.min(clients, 2);

/**
 * wrk (C, event loop) as the load client, so that the client takes little of the two cores the server
 * and PostgreSQL need, as pgbench does for the ceiling. Each request re-pushes one of a pool of sessions.
 */
function wrkScript(apiKey: string): string {
  return `
local counter = 0
local thread_id = 0
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  thread_id = id
end
request = function()
  counter = counter + 1
  local session = "bench-" .. thread_id .. "-" .. (counter % ${SESSIONS_PER_THREAD})
  local body = '{"session_id":"' .. session .. '","workflow_id":"posthog-integration","skill_id":"nextjs",' ..
    '"started_at":"2026-11-25T10:00:00Z","run_phase":"running","tasks":[{"id":"0","title":"Install the SDK",' ..
    '"status":"completed"},{"id":"1","title":"Instrument events (' .. counter .. ')","status":"in_progress"}]}'
  return wrk.format("POST", nil, {["Authorization"] = "Bearer ${apiKey}", ["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout
  io.write(string.format('WRK_RESULT {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, errors, latency:percentile(50), latency:percentile(99)))
end
`;
}

async function loadWriteApi(
  url: string,
  projectId: number,
  apiKey: string,
  clients: number,
  durationMs: number,
) {
  const dir = await mkdtemp(join(tmpdir(), 'wizard-wrk-'));
  try {
    const script = join(dir, 'upsert.lua');
    await writeFile(script, wrkScript(apiKey));
    const { stdout } = await run('wrk', [
      '-t',
      String(wrkThreads(clients)),
      '-c',
      String(clients),
      '-d',
      `${Math.round(durationMs / 1000)}s`,
      '--timeout',
      '10s',
      '-s',
      script,
      `${url}/api/projects/${projectId}/wizard/sessions/`,
    ]);
    const line = stdout.split('\n').find((text) => text.startsWith('WRK_RESULT '));
    if (!line) throw new Error(`wrk printed no result:\n${stdout}`);
    const result = JSON.parse(line.slice('WRK_RESULT '.length)) as Record<string, number>;
    const seconds = (result.duration_us as number) / 1e6;
    return {
      clients,
      upsertsPerSecond: round(((result.requests as number) - (result.errors as number)) / seconds, 0),
      p50Ms: round((result.p50_us as number) / 1000),
      p99Ms: round((result.p99_us as number) / 1000),
      errors: result.errors as number,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const pgbenchScript = (sessions: number) => `\\set session random(1, ${sessions})
insert into wizard_sessions (team_id, session_id, workflow_id, skill_id, started_at, run_phase, tasks, created_by, updated_at, committed_at, version)
values (:team, 'pgbench-' || :session, 'posthog-integration', 'nextjs', '2026-11-25T10:00:00Z', 'running',
  '[{"id":"0","title":"Install the SDK","status":"completed"},{"id":"1","title":"Instrument events","status":"in_progress"}]', :user, now(), now(), 1)
on conflict (team_id, session_id) do update set
  workflow_id = excluded.workflow_id, skill_id = excluded.skill_id, started_at = excluded.started_at,
  run_phase = excluded.run_phase, tasks = excluded.tasks, event_plan = excluded.event_plan, error = excluded.error,
  pending_input = excluded.pending_input, handoff_text = coalesce(nullif(excluded.handoff_text, ''), wizard_sessions.handoff_text),
  updated_at = now(), committed_at = now(), version = wizard_sessions.version + 1, stale_marked_at = null
where wizard_sessions.created_by = excluded.created_by
returning *;
`;

/** The ceiling: the same single-row upsert straight from pgbench, one transaction per statement. */
async function loadPgbench(url: string, teamId: number, userId: number, clients: number, durationMs: number) {
  const dir = await mkdtemp(join(tmpdir(), 'wizard-pgbench-'));
  try {
    const script = join(dir, 'upsert.sql');
    await writeFile(script, pgbenchScript(SESSIONS_PER_THREAD * wrkThreads(clients)));
    const target = new URL(url);
    const { stdout } = await run('pgbench', [
      '-n',
      '-M',
      'prepared',
      '-c',
      String(clients),
      '-j',
      String(Math.min(clients, 2)),
      '-T',
      String(Math.round(durationMs / 1000)),
      '-D',
      `team=${teamId}`,
      '-D',
      `user=${userId}`,
      '-f',
      script,
      '-l',
      '--log-prefix',
      join(dir, 'log'),
      '-h',
      target.hostname,
      '-p',
      target.port || '5432',
      '-U',
      target.username || 'postgres',
      target.pathname.slice(1),
    ]);
    const tps = Number(stdout.match(/tps = ([0-9.]+) \(without initial connection time\)/)?.[1]);
    const latencies: number[] = [];
    for (const file of await readdir(dir)) {
      if (!file.startsWith('log')) continue;
      for (const line of (await readFile(join(dir, file), 'utf8')).split('\n')) {
        const micros = Number(line.split(' ')[2]);
        if (Number.isFinite(micros) && line) latencies.push(micros / 1000);
      }
    }
    const stats = summarize(latencies);
    return { clients, upsertsPerSecond: round(tps, 0), p50Ms: stats.p50, p99Ms: stats.p99, errors: 0 };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface RunResult {
  writeApi: LevelResult[];
  pgbench: LevelResult[];
  diagnostics: LevelDiagnostics[];
}

export async function benchWriteApi(options: UpsertBenchOptions): Promise<UpsertBenchResult> {
  const { availableParallelism, loadavg } = await import('node:os');
  const loadAverageAtStart = loadavg().map((value) => round(value, 2));
  const runs: RunResult[] = [];
  for (let run = 1; run <= options.runs; run++) {
    // A fresh database for every run: dropped afterwards, so runs never measure each other's bloat.
    const database = await createTestDatabase('postgres');
    try {
      runs.push(await measure(database, options, run));
    } finally {
      await database.dispose();
    }
  }
  const summarise = (levels: (result: RunResult) => LevelResult[]) =>
    options.concurrencies.map((clients, index): LevelSummary => {
      const results = runs.map((result) => levels(result)[index] as LevelResult);
      return {
        clients,
        upsertsPerSecond: spread(results.map((result) => result.upsertsPerSecond)),
        p50Ms: spread(results.map((result) => result.p50Ms)),
        p99Ms: spread(results.map((result) => result.p99Ms)),
        errors: results.reduce((sum, result) => sum + result.errors, 0),
        runs: results,
      };
    });
  const writeApi = summarise((result) => result.writeApi);
  const pgbench = summarise((result) => result.pgbench);
  return {
    kind: 'write-api-upserts',
    date: new Date().toISOString(),
    machine: { cores: availableParallelism(), node: process.version, loadAverageAtStart },
    durationMs: options.durationMs,
    runs: options.runs,
    writeApi,
    pgbench,
    ratio: writeApi.map((level, index) => ({
      clients: level.clients,
      percentOfCeiling: round(
        (100 * level.upsertsPerSecond.median) / (pgbench[index]?.upsertsPerSecond.median ?? Number.NaN),
        1,
      ),
    })),
    diagnostics: runs.flatMap((result) => result.diagnostics),
  };
}

async function measure(database: TestDatabase, options: UpsertBenchOptions, run: number): Promise<RunResult> {
  const url = database.url as string;
  const member = await seedTeamWithMember(database.db, { teamName: 'bench', email: 'bench@example.com' });

  const nats = await NatsServer.start();
  const api = await spawnService('bench/write-api-entry.ts', {
    DATABASE_URL: url,
    NATS_URL: nats.url,
    RATE_LIMIT_PER_MIN: '1000000000',
    DB_POOL_SIZE: '20',
    LOG_LEVEL: 'warn',
    ...(process.env.BENCH_CPU_PROFILE_DIR && { BENCH_CPU_PROFILE_DIR: process.env.BENCH_CPU_PROFILE_DIR }),
  });
  const writeApi: LevelResult[] = [];
  const pgbench: LevelResult[] = [];
  const diagnostics: LevelDiagnostics[] = [];
  const sampler = new PgWaitSampler(database.db);
  try {
    for (const clients of options.concurrencies) {
      await loadWriteApi(api.url, member.teamId, member.apiKey, clients, options.warmupMs);
      await probePhase(api);
      await sampler.start();
      const result = await loadWriteApi(api.url, member.teamId, member.apiKey, clients, options.durationMs);
      const pgWaits = await sampler.stop();
      const probe = await probePhase(api);
      console.log(`write-api  run ${run}, ${clients} clients: ${JSON.stringify(result)}`);
      console.log(`write-api  run ${run}, ${clients} clients: probe ${JSON.stringify(probe)}`);
      console.log(`write-api  run ${run}, ${clients} clients: PostgreSQL ${JSON.stringify(pgWaits)}`);
      writeApi.push(result);
      diagnostics.push({ run, clients, probe, pgWaits });
    }
  } finally {
    await api.kill('SIGTERM');
    await nats.stop();
  }
  for (const clients of options.concurrencies) {
    const result = await loadPgbench(url, member.teamId, member.userId, clients, options.durationMs);
    console.log(`pgbench    run ${run}, ${clients} clients: ${JSON.stringify(result)}`);
    pgbench.push(result);
  }
  return { writeApi, pgbench, diagnostics };
}

const range = (value: Spread, unit = '') =>
  value.min === value.max ? `${value.median}${unit}` : `${value.median}${unit} (${value.min}–${value.max})`;

/** Results stored before runs were repeated hold single figures; they read as one run. */
function normalise(result: UpsertBenchResult): UpsertBenchResult {
  const level = (entry: LevelSummary | LevelResult): LevelSummary => {
    if (typeof entry.upsertsPerSecond === 'object') return entry as LevelSummary;
    const single = entry as LevelResult;
    const one = (value: number) => ({ median: value, min: value, max: value });
    return {
      clients: single.clients,
      upsertsPerSecond: one(single.upsertsPerSecond),
      p50Ms: one(single.p50Ms),
      p99Ms: one(single.p99Ms),
      errors: single.errors,
      runs: [single],
    };
  };
  return { ...result, writeApi: result.writeApi.map(level), pgbench: result.pgbench.map(level) };
}

export function upsertMarkdown(stored: UpsertBenchResult): string {
  const result = normalise(stored);
  const rows = result.writeApi.map((level, index) => {
    const ceiling = result.pgbench[index];
    const ratio = result.ratio[index]?.percentOfCeiling;
    return (
      `| ${level.clients} | ${range(level.upsertsPerSecond)} | ${range(level.p50Ms)} | ${range(level.p99Ms)} | ${level.errors} ` +
      `| ${ceiling ? range(ceiling.upsertsPerSecond) : '–'} | ${ceiling ? range(ceiling.p50Ms) : '–'} | ${ceiling ? range(ceiling.p99Ms) : '–'} | ${ratio} % |`
    );
  });
  const probes = (result.diagnostics ?? []).map((entry) => {
    const top = [
      ...((
        entry.probe.extra as {
          byKind?: { kind: string; shareOfSlowRequestsOverlapping: number; shareOfPhaseTime: number }[];
        }
      )?.byKind ?? []),
    ]
      .sort((a, b) => b.shareOfSlowRequestsOverlapping - a.shareOfSlowRequestsOverlapping)
      .slice(0, 3)
      .map(
        (kind) =>
          `${kind.kind} ${Math.round(kind.shareOfSlowRequestsOverlapping * 100)} % (covers ${Math.round(kind.shareOfPhaseTime * 100)} % of the time)`,
      )
      .join(', ');
    const slow = (entry.probe.extra as { slowRequests?: number; requests?: number } | undefined) ?? {};
    return (
      `| ${entry.run} | ${entry.clients} | ${entry.probe.eventLoopDelayMs.p99} / ${entry.probe.eventLoopDelayMs.max} | ${entry.probe.gc.count} / ${entry.probe.gc.maxMs} | ` +
      `${slow.slowRequests ?? '–'} of ${slow.requests ?? '–'} | ${top || '–'} | ${entry.pgWaits.deadlocks} |`
    );
  });
  return [
    `Median (and range) over ${result.runs ?? 1} run${(result.runs ?? 1) === 1 ? '' : 's'} per level.`,
    '',
    '| clients | write-api upserts/s | p50 ms | p99 ms | errors | pgbench tps | pgbench p50 ms | pgbench p99 ms | write-api / pgbench |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows,
    ...(probes.length > 0
      ? [
          '',
          'Inside write-api during each measured level (bench/write-api-entry.ts): event-loop delay, GC pauses, and what the',
          'requests slower than 50 ms overlapped (share of slow requests that met each kind of work, beside the share of the time',
          'that work covered); deadlocks from pg_stat_database.',
          '',
          '| run | clients | event-loop delay p99 / max ms | GC pauses / longest ms | slow requests | slow requests overlapped | deadlocks |',
          '|---:|---:|---:|---:|---:|---|---:|',
          ...probes,
        ]
      : []),
  ].join('\n');
}
