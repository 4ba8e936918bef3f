import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
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

const upserts = await saved<UpsertBenchResult>('write-api');
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
        'Closed-loop clients each re-push their own session through HTTP (auth, validation, one upsert statement, publish',
        'to NATS, batched publish confirmation); pgbench runs the same single-row upsert statement with prepared statements',
        'as the ceiling. Target: at least 60 % of the pgbench ceiling, p99 under 50 ms at 16 clients.',
        '',
        upsertMarkdown(upserts),
      ].join('\n')
    : '_not measured yet_',
];
await writeFile('docs/benchmarks.md', `${sections.join('\n')}\n`);
console.log('wrote docs/benchmarks.md');
