import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { benchFanout, type GatewayBenchResult, gatewayMarkdown } from './gateway.js';
import { benchWriteApi, type UpsertBenchResult, upsertMarkdown } from './write-api.js';

/**
 * `npm run bench [-- --only write-api] [-- --quick]`: runs the benchmarks on this machine, writes each
 * result to bench/results/<name>.json and regenerates docs/benchmarks.md from every stored result.
 * Loopback traffic only; every load loop is bounded in time.
 */
const { values } = parseArgs({
  options: { only: { type: 'string' }, quick: { type: 'boolean', default: false } },
});
const selected = (name: string) => values.only === undefined || values.only === name;
const RESULTS = 'bench/results';

async function saved<T>(name: string): Promise<T | undefined> {
  const path = `${RESULTS}/${name}.json`;
  return existsSync(path) ? (JSON.parse(await readFile(path, 'utf8')) as T) : undefined;
}

if (selected('write-api')) {
  const result = await benchWriteApi({
    concurrencies: [1, 16, 64],
    durationMs: values.quick ? 3000 : 10_000,
    warmupMs: values.quick ? 1000 : 2000,
  });
  await writeFile(`${RESULTS}/write-api.json`, `${JSON.stringify(result, null, 2)}\n`);
}

if (selected('gateway')) {
  const result = await benchFanout(
    values.quick
      ? {
          clients: 2000,
          clientProcesses: 4,
          rates: [1, 5, 10],
          stepMs: 3000,
          warmupMs: 1000,
          quietMs: 1500,
          connectConcurrency: 256,
          endToEndUpserts: 2,
        }
      : {
          clients: 10_000,
          clientProcesses: 4,
          rates: [1, 2, 5, 10],
          stepMs: 10_000,
          warmupMs: 3000,
          quietMs: 5000,
          connectConcurrency: 512,
          endToEndUpserts: 3,
        },
  );
  await writeFile(`${RESULTS}/gateway.json`, `${JSON.stringify(result, null, 2)}\n`);
}

const upserts = await saved<UpsertBenchResult>('write-api');
const fanout = await saved<GatewayBenchResult>('gateway');
const sections = [
  '# Benchmarks',
  '',
  'Produced by `npm run bench` (all) or `npm run bench -- --only <name>`; raw results are in `bench/results/*.json`.',
  'Everything runs on one 2-core machine: the load client, the services, PostgreSQL and nats-server share the cores,',
  'so these figures are a floor for a real deployment, not a ceiling.',
  '',
  '## write-api upserts',
  '',
  upserts
    ? [
        `Measured ${upserts.date} (Node ${upserts.machine.node}, ${upserts.machine.cores} cores), ${upserts.durationMs / 1000} s per level after a warm-up.`,
        '`npm run bench -- --only write-api`: wrk (C, 1–2 threads) runs closed-loop clients that re-push sessions through HTTP',
        '(auth, validation, the upsert, publish to NATS, batched publish confirmation) over 4096 sessions per wrk thread;',
        'write-api commits the pushes that arrive together in one multi-row statement (group commit). pgbench runs the same',
        'upsert, one row per transaction, with prepared statements, over as many distinct sessions, as the ceiling: what',
        'PostgreSQL does on this machine with no HTTP, JSON or NATS in the way. write-api and PostgreSQL share the two cores.',
        'Target: at least 60 % of the pgbench ceiling, p99 under 50 ms at 16 clients.',
        '',
        upsertMarkdown(upserts),
      ].join('\n')
    : '_not measured yet_',
  '',
  '## stream-gateway fan-out',
  '',
  fanout
    ? [
        `Measured ${fanout.date} (Node ${fanout.machine.node}, ${fanout.machine.cores} cores, load average ${fanout.machine.loadAverageAtStart.join(' / ')} at the start) with`,
        `\`npm run bench -- --only gateway${fanout.options.clients < 10_000 ? ' --quick' : ''}\`: ${fanout.options.clients} SSE clients (raw TCP, ${fanout.options.clientProcesses} client processes on`,
        'their own 127.0.0.x source addresses) on one workflow of ONE stream-gateway process (its own nats-server, a real',
        'write-api on PostgreSQL for the snapshots); updates of one session are published straight on NATS with',
        `\`Wizard-Committed-At\` = send time, ${fanout.options.stepMs / 1000} s per rate. Latency = client receive time − send time (same clock).`,
        'nginx + nchan (one worker process, as the gateway is one Node process) serves the same clients over EventSource',
        'with the same DTO bytes POSTed to its publisher location at the same rates. Server CPU is in % of one core.',
        'Targets: p99 < 250 ms at 50,000 deliveries/s, 10,000 streams open in < 5 s, ≤ 16 KiB RSS per idle connection.',
        'Above about 75,000 deliveries/s the machine is saturated (the server and four client processes on two cores):',
        "nchan's HTTP publisher then waits for nginx and publishes fewer updates than asked (the published column), while",
        'NATS publishes do not wait, so the gateway queues and its latency grows; that row shows the limit of this machine.',
        '',
        gatewayMarkdown(fanout),
      ].join('\n')
    : '_not measured yet_',
];
await writeFile('docs/benchmarks.md', `${sections.join('\n')}\n`);
// Formatted as `npm run lint` checks it (tables aligned), so a regenerated page never fails the lint.
execFileSync('node_modules/.bin/biome', ['format', '--write', 'docs/benchmarks.md'], { stdio: 'ignore' });
console.log('wrote docs/benchmarks.md');
