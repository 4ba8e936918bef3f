#!/usr/bin/env node
// Bundles a service for its container image: `node scripts/build-bundles.mjs <write-api|stream-gateway> <outdir>`.
// Writes <outdir>/main.js (the service), <outdir>/otel.js (the OpenTelemetry preload, a separate bundle so
// it runs before Fastify is loaded: `node --import ./otel.js main.js`), <outdir>/package.json (ESM), and
// copies the few packages that cannot be bundled into <outdir>/node_modules.
import { cp, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Packages left out of the bundle. PGlite loads its WASM and data files from its own directory. */
const EXTERNAL = {
  'write-api': { copied: ['@electric-sql/pglite'], optional: ['pg-native'] },
  'stream-gateway': { copied: [], optional: ['pg-native'] },
};

const [service, outArg] = process.argv.slice(2);
if (!service || !outArg || !(service in EXTERNAL)) {
  console.error(`usage: build-bundles.mjs <${Object.keys(EXTERNAL).join('|')}> <outdir>`);
  process.exit(2);
}
const outdir = resolve(outArg);
const { copied, optional } = EXTERNAL[service];

await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: ['main', 'otel'].map((name) => join(root, 'services', service, 'src', `${name}.ts`)),
  outdir,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  logLevel: 'warning',
  external: [...copied, ...optional],
  // Bundled CommonJS dependencies call require() for Node built-ins; ESM output has none of its own.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
});
await writeFile(join(outdir, 'package.json'), '{ "type": "module" }\n');
for (const name of copied) {
  const target = join(outdir, 'node_modules', name);
  await mkdir(dirname(target), { recursive: true });
  await cp(join(root, 'node_modules', name), target, { recursive: true });
}
// write-api's offline docs page (/api/schema/docs/): swagger-ui's assets, found next to main.js.
if (service === 'write-api') {
  await cp(join(root, 'node_modules', '@fastify', 'swagger-ui', 'static'), join(outdir, 'swagger-ui'), {
    recursive: true,
  });
}
console.log(`build-bundles: ${service} -> ${outdir}`);
