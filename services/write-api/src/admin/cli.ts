import { parseArgs } from 'node:util';
import { BusConnection, busOptionsOf } from '@wizard-stream/bus';
import {
  camelCaseKeys,
  databaseEnv,
  databaseLocation,
  envString,
  loadConfig,
  natsAuthEnv,
  type Revocation,
  refineNatsEnv,
  SCOPES,
  type Scope,
} from '@wizard-stream/contracts';
import {
  addTeamMember,
  createApiKey,
  createTeam,
  createUser,
  findUserByEmail,
  listApiKeys,
  migrateToLatest,
  openDatabase,
  removeTeamMember,
  revokeApiKey,
} from '@wizard-stream/db';
import { z } from 'zod';
import { publishRevocation } from '../auth/revocations.js';
import { listDeadLetters, retryDeadLetters } from '../sessions/queries.js';

const USAGE = `Usage: npm run admin -- <command> [options]   (against DATABASE_URL, or PGLITE_DIR when unset)

  migrate                                         apply database migrations
  create-team --name NAME                         prints the team id
  create-user --email EMAIL [--first-name NAME]   prints the user id
  add-member --team ID --email EMAIL              adds the user to the team
  remove-member --team ID --email EMAIL           removes the user from the team; their streams end
  create-key --email EMAIL [--scopes read,write,keys-read,keys-write] [--label TEXT]
                                                  prints the key ONCE; only its hash is stored
  revoke-key --id KEY_ID                          its streams and stream tokens end too
  list-keys [--email EMAIL]
  dead-letters list [--team ID]                   sessions the relay set aside, with their last error
  dead-letters retry [--team ID] [--session ID]   gives them back to the relay (after fixing the cause)

revoke-key and remove-member tell the gateways over NATS_URL (when set) to end the open streams at once;
without it those streams end at their rotation (STREAM_MAX_DURATION_MS). While write-api runs on PGlite,
which one process can open at a time, use DELETE /api/personal_api_keys/:id/ instead.`;

/** The CLI announces revocations as write-api does, so it logs in to NATS with write-api's NATS_* settings. */
const adminEnvSchema = z
  .object({ ...databaseEnv, NATS_URL: envString(), ...natsAuthEnv })
  .superRefine(refineNatsEnv)
  .transform(({ DATABASE_URL, PGLITE_DIR, NATS_URL, ...nats }) => ({
    database: databaseLocation({ DATABASE_URL, PGLITE_DIR }),
    nats: NATS_URL === undefined ? undefined : { natsUrl: NATS_URL, ...camelCaseKeys(nats) },
  }));
type AdminNats = z.infer<typeof adminEnvSchema>['nats'];

const scopeNames: Record<string, Scope> = {
  read: SCOPES.read,
  write: SCOPES.write,
  'keys-read': SCOPES.keysRead,
  'keys-write': SCOPES.keysWrite,
  ...Object.fromEntries(Object.values(SCOPES).map((scope) => [scope, scope])),
};

const NATS_TIMEOUT_MS = 5000;

/** Hands a revocation to NATS and waits for the server to have it; a sentence saying what happened. */
async function announce(nats: AdminNats, revocation: Omit<Revocation, 'revoked_at'>, at: Date) {
  if (!nats) return 'NATS_URL is unset: open streams end at their rotation';
  const natsUrl = nats.natsUrl;
  const bus = new BusConnection({ ...busOptionsOf(nats), name: 'wizard-admin' });
  let timer: NodeJS.Timeout | undefined;
  try {
    const connected = await Promise.race([
      bus.ready().then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), NATS_TIMEOUT_MS);
      }),
    ]);
    if (!connected || !publishRevocation(bus, revocation, at)) {
      return `NATS at ${natsUrl} did not answer: open streams end at their rotation`;
    }
    await bus.nats?.flush();
    return 'the gateways were told to end its open streams';
  } finally {
    clearTimeout(timer);
    await bus.close();
  }
}

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

  const config = loadConfig('admin', adminEnvSchema, process.env);
  const database = await openDatabase(config.database);
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
      case 'remove-member': {
        const user = await userByEmail(required(values, 'email'));
        const teamId = positiveInt(required(values, 'team'), 'team');
        if (!(await removeTeamMember(db, teamId, user.id))) {
          console.log(`user ${user.id} is not a member of team ${teamId}`);
          break;
        }
        const told = await announce(config.nats, { user_id: user.id, team_id: teamId }, new Date());
        console.log(`user ${user.id} removed from team ${teamId}; ${told}`);
        break;
      }
      case 'create-key': {
        const user = await userByEmail(required(values, 'email'));
        const scopes = (values.scopes ?? '').split(',').map((name) => {
          const scope = scopeNames[name.trim()];
          if (!scope)
            throw new UsageError(
              `unknown scope ${JSON.stringify(name)} (use read, write, keys-read, keys-write)`,
            );
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
        const revoked = await revokeApiKey(db, id);
        if (!revoked) {
          console.log(`key ${id} not found or already revoked`);
          break;
        }
        const told = await announce(config.nats, { key_id: id, user_id: revoked.userId }, revoked.revokedAt);
        console.log(`key ${id} revoked; ${told}`);
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
