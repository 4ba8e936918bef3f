#!/usr/bin/env node
// Installs what a fresh clone lacks before tests, benchmarks or the local stack run: npm dependencies
// (from the lockfile) and the system packages the tests and benchmarks drive (nats-server, Chromium,
// wrk, pgbench, nginx + nchan, Pushpin + zurl).
// Plain Node with no dependencies, because it runs before anything is installed.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));

function run(command, commandArgs) {
  const result = spawnSync(command, commandArgs, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) {
    console.error(
      `ensure-deps: "${command} ${commandArgs.join(' ')}" failed with exit code ${result.status}`,
    );
    process.exit(result.status ?? 1);
  }
}

function npmDependenciesCurrent() {
  const installed = join(root, 'node_modules', '.package-lock.json');
  const lock = join(root, 'package-lock.json');
  return existsSync(installed) && existsSync(lock) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs;
}

function onPath(binary) {
  return spawnSync('sh', ['-c', `command -v ${binary}`], { stdio: 'ignore' }).status === 0;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
let aptUpdated = false;

/**
 * Installs Debian packages when this process may; otherwise stops with the command to run, or, for an
 * optional package (a test that skips without it), says so and goes on.
 */
function ensureSystemPackage(binaryPaths, aptPackage, why, { optional = false } = {}) {
  if (binaryPaths.some((path) => (path.includes('/') ? existsSync(path) : onPath(path)))) return;
  if (isRoot && onPath('apt-get')) {
    console.log(`ensure-deps: installing ${aptPackage} (${why})`);
    if (!aptUpdated) {
      run('apt-get', ['update', '-qq']);
      aptUpdated = true;
    }
    run('apt-get', ['install', '-y', '-qq', aptPackage]);
    return;
  }
  if (optional) {
    console.warn(
      `ensure-deps: ${aptPackage} is missing (${why}); install it with: sudo apt-get install -y ${aptPackage}`,
    );
    return;
  }
  console.error(
    `ensure-deps: ${aptPackage} is required (${why}). Install it with:\n  sudo apt-get install -y ${aptPackage}`,
  );
  process.exit(1);
}

if (!npmDependenciesCurrent()) {
  console.log('ensure-deps: installing npm dependencies');
  run(
    'npm',
    existsSync(join(root, 'package-lock.json'))
      ? ['ci', '--no-audit', '--no-fund']
      : ['install', '--no-audit', '--no-fund'],
  );
}

ensureSystemPackage(
  ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', 'nats-server'],
  'nats-server',
  'the message bus',
);
if (args.has('--browser')) {
  ensureSystemPackage(['/usr/bin/chromium', 'chromium'], 'chromium', 'browser tests');
}
if (args.has('--bench')) {
  ensureSystemPackage(['/usr/bin/wrk', 'wrk'], 'wrk', 'the HTTP load client of the write-api benchmark');
  ensureSystemPackage(
    ['/usr/bin/pgbench', 'pgbench'],
    'postgresql-client',
    'the pgbench ceiling of the write-api benchmark',
  );
  ensureSystemPackage(['/usr/sbin/nginx'], 'nginx-light', 'nginx, the first peer of the fan-out benchmark');
  ensureSystemPackage(
    ['/usr/lib/nginx/modules/ngx_nchan_module.so'],
    'libnginx-mod-nchan',
    'nchan, the first peer of the fan-out benchmark',
  );
  ensureSystemPackage(['/usr/bin/pushpin'], 'pushpin', 'the second peer of the fan-out benchmark');
  ensureSystemPackage(['/usr/bin/zurl'], 'zurl', "Pushpin's outbound HTTP to its GRIP origin");
}
if (args.has('--kubectl')) {
  ensureSystemPackage(['/usr/bin/kubectl', 'kubectl'], 'kubectl', 'rendering the kustomize manifests');
}
if (args.has('--podman')) {
  // The deployment test (test/deploy-run.test.ts) runs the manifests with rootful podman; it skips, naming
  // what is missing, where these cannot be installed.
  const why = 'running the manifests in test/deploy-run.test.ts';
  const optional = { optional: true };
  ensureSystemPackage(['/usr/bin/podman', 'podman'], 'podman', why, optional);
  ensureSystemPackage(['/usr/sbin/runc', 'runc'], 'runc', `${why} (crun fails on mixed cgroups)`, optional);
  ensureSystemPackage(
    ['/usr/bin/mmdebstrap', 'mmdebstrap'],
    'mmdebstrap',
    `${why}: the Debian base image`,
    optional,
  );
  ensureSystemPackage(
    ['/usr/lib/cni/bridge'],
    'containernetworking-plugins',
    `${why}: pod networking`,
    optional,
  );
}
