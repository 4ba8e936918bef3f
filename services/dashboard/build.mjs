#!/usr/bin/env node
// Bundles the dashboard into dist/ (index.html, app.js, app.css). The local stack calls
// buildDashboardIfStale() so a fresh clone or an edited source is rebuilt before it is served.
import { copyFile, mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const packageDir = dirname(fileURLToPath(import.meta.url));
export const DASHBOARD_SOURCE_DIR = join(packageDir, 'src');
export const DASHBOARD_DIST_DIR = join(packageDir, 'dist');
const OUTPUTS = ['index.html', 'app.js', 'app.css'];
/** Workspace packages bundled into the page: their sources count as inputs too. */
const BUNDLED_SOURCE_DIRS = [DASHBOARD_SOURCE_DIR, join(packageDir, '../../packages/client/src')];

async function newestMtime(dir) {
  let newest = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const { mtimeMs } = await stat(join(entry.parentPath ?? entry.path, entry.name));
    newest = Math.max(newest, mtimeMs);
  }
  return newest;
}

/** True when an output is missing or older than any source it is built from. */
export async function isDashboardStale() {
  let oldestOutput = Number.POSITIVE_INFINITY;
  for (const name of OUTPUTS) {
    try {
      oldestOutput = Math.min(oldestOutput, (await stat(join(DASHBOARD_DIST_DIR, name))).mtimeMs);
    } catch {
      return true;
    }
  }
  for (const dir of BUNDLED_SOURCE_DIRS) {
    if ((await newestMtime(dir).catch(() => 0)) > oldestOutput) return true;
  }
  return false;
}

export async function buildDashboard({ minify = true } = {}) {
  const { build, stop } = await import('esbuild');
  await mkdir(DASHBOARD_DIST_DIR, { recursive: true });
  await build({
    entryPoints: { app: join(DASHBOARD_SOURCE_DIR, 'main.ts') },
    outdir: DASHBOARD_DIST_DIR,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    minify,
    sourcemap: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  // esbuild keeps a service process alive for further builds; the stack would carry it until exit.
  await stop();
  await copyFile(join(DASHBOARD_SOURCE_DIR, 'styles.css'), join(DASHBOARD_DIST_DIR, 'app.css'));
  await copyFile(join(DASHBOARD_SOURCE_DIR, 'index.html'), join(DASHBOARD_DIST_DIR, 'index.html'));
}

/** Builds only when needed; returns whether it built. */
export async function buildDashboardIfStale() {
  if (!(await isDashboardStale())) return false;
  await buildDashboard();
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await buildDashboard();
  console.log(`dashboard built into ${DASHBOARD_DIST_DIR}`);
}
