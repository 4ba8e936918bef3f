import { parseArgs } from 'node:util';
import { databaseEnv, databaseLocation, loadConfig, SCOPES, type Scope } from '@wizard-stream/contracts';
import {
  addTeamMember,
  createApiKey,
  createTeam,
  createUser,
  findUserByEmail,
  listApiKeys,
  migrateToLatest,
  openDatabase,
  revokeApiKey,
} from '@wizard-stream/db';
import { z } from 'zod';
import { listDeadLetters, retryDeadLetters } from '../sessions/queries.js';

const USAGE = `Usage: npm run admin -- <command> [options]   (against DATABASE_URL, or PGLITE_DIR when unset)

  migrate                                         apply database migrations
  create-team --name NAME                         prints the team id
  create-user --email EMAIL [--first-name NAME]   prints the user id
  add-member --team ID --email EMAIL              adds the user to the team
  create-key --email EMAIL [--scopes read,write] [--label TEXT]
                                                  prints the key ONCE; only its hash is stored
  revoke-key --id KEY_ID
  list-keys [--email EMAIL]
  dead-letters list [--team ID]                   sessions the relay set aside, with their last error
  dead-letters retry [--team ID] [--session ID]   gives them back to the relay (after fixing the cause)`;

const adminEnvSchema = z.object(databaseEnv).transform(databaseLocation);

const scopeNames: Record<string, Scope> = { read: SCOPES.read, write: SCOPES.write };

class UsageError extends Error {}

function required(values: Record<string, unknown>, name: string): string {
  const value = values[name];
  if (typeof value !== 'string' || value.trim() === '') throw new UsageError(`--${name} is required`);
  return value;
}

function positiveInt(value: string, name: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed <= 0)
    throw new UsageError(`--${name} must be a positive integer, got ${JSON.stringify(value)}`);
  return parsed;
}

async function run(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      name: { type: 'string' },
      email: { type: 'string' },
      'first-name': { type: 'string' },
      team: { type: 'string' },
      scopes: { type: 'string', default: 'read,write' },
      label: { type: 'string', default: '' },
      id: { type: 'string' },
      session: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [command] = positionals;
  if (!command || values.help) {
    console.log(USAGE);
    return;
  }

  const database = await openDatabase(loadConfig('admin', adminEnvSchema, process.env));
  const { db } = database;
  const userByEmail = async (email: string) => {
    const user = await findUserByEmail(db, email);
    if (!user) throw new UsageError(`no user with email ${JSON.stringify(email)}`);
    return user;
  };
  try {
    await migrateToLatest(db);
    switch (command) {
      case 'migrate':
        console.log('migrations applied');
        break;
      case 'create-team':
        console.log(`team ${await createTeam(db, required(values, 'name'))}`);
        break;
      case 'create-user':
        console.log(`user ${await createUser(db, required(values, 'email'), values['first-name'] ?? '')}`);
        break;
      case 'add-member': {
        const user = await userByEmail(required(values, 'email'));
        await addTeamMember(db, positiveInt(required(values, 'team'), 'team'), user.id);
        console.log(`user ${user.id} is a member of team ${values.team}`);
        break;
      }
      case 'create-key': {
        const user = await userByEmail(required(values, 'email'));
        const scopes = (values.scopes ?? '').split(',').map((name) => {
          const scope = scopeNames[name.trim()];
          if (!scope) throw new UsageError(`unknown scope ${JSON.stringify(name)} (use read, write)`);
          return scope;
        });
        const { id, key } = await createApiKey(db, user.id, scopes, values.label ?? '');
        console.log(
          `key ${id} for ${user.email} (${scopes.join(', ')}):\n${key}\nStore it now: it is not shown again.`,
        );
        break;
      }
      case 'revoke-key': {
        const id = positiveInt(required(values, 'id'), 'id');
        console.log(
          (await revokeApiKey(db, id)) ? `key ${id} revoked` : `key ${id} not found or already revoked`,
        );
        break;
      }
      case 'list-keys': {
        const user = values.email ? await userByEmail(values.email) : undefined;
        for (const key of await listApiKeys(db, user?.id)) {
          const state = key.revoked_at ? `revoked ${key.revoked_at.toISOString()}` : 'active';
          console.log(`${key.id}\t${key.email}\t${key.scopes.join(',')}\t${state}\t${key.label}`);
        }
        break;
      }
      case 'dead-letters': {
        const team = values.team === undefined ? undefined : positiveInt(values.team, 'team');
        const action = positionals[1];
        if (action === 'list') {
          for (const row of await listDeadLetters(db, team)) {
            console.log(
              `${row.teamId}\t${row.sessionId}\tv${row.version}\t${row.attempts} attempts\t${row.deadLetteredAt?.toISOString()}\t${row.error ?? ''}`,
            );
          }
        } else if (action === 'retry') {
          const retried = await retryDeadLetters(db, { teamId: team, sessionId: values.session });
          console.log(`${retried} dead-lettered session(s) given back to the relay`);
        } else {
          throw new UsageError('dead-letters takes list or retry');
        }
        break;
      }
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    }
  } finally {
    await database.close();
  }
}

run(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    console.error(`admin: ${error.message}\n\n${USAGE}`);
    process.exit(2);
  }
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
