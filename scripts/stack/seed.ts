// A short step before write-api starts: migrate and, on the first start only, seed two teams. It runs
// as its own process because a PGlite data directory can be open in one process at a time; it has
// closed the database by the time it prints its result (the last stdout line, JSON).
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { databaseEnv, databaseLocation, envString, loadConfig, SCOPES } from '@wizard-stream/contracts';
import { findApiKey, hashApiKey, migrateToLatest, openDatabase, seedTeamWithMember } from '@wizard-stream/db';
import { z } from 'zod';
import type { TeamCredential } from './state.js';

interface SeedResult {
  teams: TeamCredential[];
  seeded: boolean;
  migrations: string[];
}

const TEAM_COUNT = 2;

async function previousTeams(credentialsPath: string | undefined): Promise<TeamCredential[]> {
  if (!credentialsPath) return [];
  try {
    const parsed = JSON.parse(await readFile(credentialsPath, 'utf8')) as { teams?: TeamCredential[] };
    return Array.isArray(parsed.teams) ? parsed.teams : [];
  } catch {
    return [];
  }
}

const seedConfigSchema = z
  .object({ ...databaseEnv, CREDENTIALS_FILE: envString() })
  .transform((env) => ({ database: databaseLocation(env), credentialsFile: env.CREDENTIALS_FILE }));

async function main(): Promise<SeedResult> {
  const config = loadConfig('stack seed', seedConfigSchema, process.env);
  const database = await openDatabase(config.database);
  try {
    const migrations = await migrateToLatest(database.db);
    const known = await previousTeams(config.credentialsFile);
    // Keep the keys of an earlier start as long as the database still knows them.
    const live = await Promise.all(
      known.map(
        async (team) => (await findApiKey(database.db, hashApiKey(team.api_key), team.id))?.isMember === true,
      ),
    );
    if (known.length >= TEAM_COUNT && live.every(Boolean)) return { teams: known, seeded: false, migrations };

    const teams: TeamCredential[] = [];
    for (let index = 1; index <= TEAM_COUNT; index++) {
      const suffix = randomBytes(4).toString('hex');
      const member = await seedTeamWithMember(database.db, {
        teamName: `Local team ${index}`,
        email: `developer-${index}-${suffix}@wizard-stream.local`,
        firstName: `Developer ${index}`,
        // Every scope, key management included: while write-api holds the PGlite files, the admin CLI
        // cannot open them, and /api/personal_api_keys/ is how local keys are made and revoked.
        scopes: Object.values(SCOPES),
      });
      teams.push({ id: member.teamId, api_key: member.apiKey });
    }
    return { teams, seeded: true, migrations };
  } finally {
    await database.close();
  }
}

main().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  (error: unknown) => {
    console.error(`seed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
