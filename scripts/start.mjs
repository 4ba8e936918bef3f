#!/usr/bin/env node
// `npm start`: the whole product on one machine (docs/README.md). Plain Node with no dependencies, because it
// first has to install them; then it builds the dashboard if needed and hands over to the TypeScript
// orchestrator in scripts/stack/, loaded in this same process through tsx.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

const deps = spawnSync(process.execPath, [join(root, 'scripts', 'ensure-deps.mjs')], {
  cwd: root,
  stdio: 'inherit',
});
if (deps.status !== 0) process.exit(deps.status ?? 1);

const { buildDashboardIfStale } = await import('../services/dashboard/build.mjs');
if (await buildDashboardIfStale()) console.log('start: dashboard built into services/dashboard/dist');

const { register } = await import('tsx/esm/api');
register();
const { runLocalStack } = await import('./stack/main.ts');
await runLocalStack({ root, env: process.env });
