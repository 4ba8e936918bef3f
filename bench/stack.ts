import { type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import {
  createTestDatabase,
  NatsServer,
  type ServiceProcess,
  spawnService,
  type TestDatabase,
} from '@wizard-stream/testkit';

/**
 * The product as the stream benchmarks run it: a fresh PostgreSQL bench database (dropped at the end),
 * its own nats-server, one write-api and N stream-gateway processes (bench/gateway-entry.ts: the
 * production entry plus the phase probe). Every process is stopped by close().
 */

export const INTERNAL_TOKEN = 'bench-internal-token-0123456789';

export interface Stack {
  database: TestDatabase;
  member: SeededMember;
  nats: NatsServer;
  writeApi: ServiceProcess;
  gateways: ServiceProcess[];
  close(): Promise<void>;
}

export interface StackOptions {
  gateways: number;
  email: string;
  writeApiEnv?: Record<string, string>;
  gatewayEnv?: Record<string, string>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const database = await createTestDatabase('postgres');
  const started: ServiceProcess[] = [];
  let nats: NatsServer | undefined;
  const close = async () => {
    for (const service of started.reverse()) await service.kill('SIGKILL');
    await nats?.stop();
    await database.dispose();
  };
  try {
    const member = await seedTeamWithMember(database.db, { teamName: 'bench', email: options.email });
    nats = await NatsServer.start();
    const writeApi = await spawnService('services/write-api/src/main.ts', {
      DATABASE_URL: database.url as string,
      NATS_URL: nats.url,
      INTERNAL_API_TOKEN: INTERNAL_TOKEN,
      LOG_LEVEL: 'warn',
      ...options.writeApiEnv,
    });
    started.push(writeApi);
    const gateways: ServiceProcess[] = [];
    for (let index = 0; index < options.gateways; index++) {
      const gateway = await spawnService('bench/gateway-entry.ts', {
        NATS_URL: nats.url,
        WRITE_API_URL: writeApi.url,
        INTERNAL_API_TOKEN: INTERNAL_TOKEN,
        LOG_LEVEL: 'warn',
        // BENCH_GATEWAY_NODE_OPTIONS: V8 flags to try on the gateways (e.g. --max-semi-space-size=32).
        NODE_OPTIONS: `--expose-gc ${process.env.BENCH_GATEWAY_NODE_OPTIONS ?? ''}`.trim(),
        ...options.gatewayEnv,
      });
      started.push(gateway);
      gateways.push(gateway);
    }
    return { database, member, nats, writeApi, gateways, close };
  } catch (error) {
    await close();
    throw error;
  }
}
