import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { StackSecrets } from './state.js';

/**
 * The local nats-server's users, with the permissions of docs/operations.md#security: write-api publishes
 * sessions (and revocations) on `wizard.>` and reads nothing but its own replies; the gateways read
 * `wizard.>` and publish nothing (an empty `allow` list would allow everything, so `deny` every subject).
 * deploy/k8s/base/nats.yaml grants the same; test/nats-permissions.test.ts checks both.
 */
export const NATS_USERS = {
  writeApi: {
    user: 'write-api',
    permissions: { publish: { allow: ['wizard.>'] }, subscribe: { allow: ['_INBOX.>'] } },
  },
  gateway: {
    user: 'stream-gateway',
    permissions: { publish: { deny: ['>'] }, subscribe: { allow: ['wizard.>', '_INBOX.>'] } },
  },
} as const;

/** The user's TLS settings would point the services at certificates the local nats-server does not use. */
export const NATS_TLS_VARIABLES = ['NATS_TLS_CA_FILE', 'NATS_TLS_CERT_FILE', 'NATS_TLS_KEY_FILE'] as const;

export type NatsLogin = { NATS_USER: string; NATS_PASSWORD: string };

/** Each service's login on the local nats-server, from `.data/secrets.json`. */
export function localNatsLogins(secrets: StackSecrets): { writeApi: NatsLogin; gateway: NatsLogin } {
  return {
    writeApi: { NATS_USER: NATS_USERS.writeApi.user, NATS_PASSWORD: secrets.nats_write_api_password },
    gateway: { NATS_USER: NATS_USERS.gateway.user, NATS_PASSWORD: secrets.nats_gateway_password },
  };
}

/**
 * The local nats-server's config file. JSON is valid nats-server config syntax, and quoting every value
 * keeps a password from being read as a number. No anonymous user: a connect without a login is refused.
 */
export function localNatsConfig(secrets: StackSecrets): string {
  const logins = localNatsLogins(secrets);
  const config = {
    // A session may be as large as the 1 MiB body limit, and its message adds the DTO's own fields and
    // headers: the server's default max_payload (1 MiB) would refuse such a publish.
    max_payload: 2 * 1024 * 1024,
    authorization: {
      users: [
        { ...login(logins.writeApi), permissions: NATS_USERS.writeApi.permissions },
        { ...login(logins.gateway), permissions: NATS_USERS.gateway.permissions },
      ],
    },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

function login({ NATS_USER, NATS_PASSWORD }: NatsLogin) {
  return { user: NATS_USER, password: NATS_PASSWORD };
}

/** Writes the config readable by its owner only: it holds both passwords. */
export async function writeLocalNatsConfig(path: string, secrets: StackSecrets): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, localNatsConfig(secrets), { mode: 0o600 });
}
