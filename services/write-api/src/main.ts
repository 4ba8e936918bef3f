import { ConfigError } from '@wizard-stream/contracts';
import { migrateToLatest, openDatabase } from '@wizard-stream/db';
import { shutdownTelemetry } from '@wizard-stream/telemetry/sdk';
import { startWriteApi } from './app.js';
import { loadWriteApiConfig } from './config.js';

/** Process entry: `node --import tsx src/main.ts` (or the bundle). `--migrate-only` runs migrations and exits. */
async function main(): Promise<void> {
  const config = loadWriteApiConfig(process.env);

  if (process.argv.includes('--migrate-only')) {
    const database = await openDatabase(config.database);
    try {
      const applied = await migrateToLatest(database.db);
      console.log(JSON.stringify({ level: 'info', msg: 'migrations applied', applied }));
    } finally {
      await database.close();
    }
    return;
  }

  const api = await startWriteApi(config);
  api.app.log.info(
    { url: api.url, database: config.database.url ? 'postgres' : `pglite:${config.database.pgliteDataDir}` },
    'write-api listening',
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    api.app.log.info({ signal }, 'shutting down');
    const forced = setTimeout(() => process.exit(1), 15_000).unref();
    api
      .close()
      .then(() => shutdownTelemetry())
      .then(
        () => {
          clearTimeout(forced);
          process.exit(0);
        },
        (error: unknown) => {
          api.app.log.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : error);
  process.exit(1);
});
