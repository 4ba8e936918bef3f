import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { connect } from '@nats-io/transport-node';
import { NatsServer } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localNatsLogins, writeLocalNatsConfig } from '../scripts/stack/nats-config.js';
import { loadOrCreateSecrets } from '../scripts/stack/state.js';
import { type BundledNatsCluster, startBundledNatsCluster } from './support/bundled-nats.js';
import { containerEnv, findObject, renderKustomization } from './support/manifests.js';
import { createNatsCerts, type NatsCerts } from './support/nats-certs.js';
import { type NatsTarget, natsPermissionTests } from './support/nats-probes.js';

/**
 * Issue 10's forged publisher and sniffing subscriber, against both NATS configurations the project
 * ships: the one `npm start` writes into .data/ and the cluster config of deploy/k8s.
 */

describe("npm start's nats-server config (scripts/stack/nats-config.ts)", () => {
  let dir: string;
  let nats: NatsServer;
  let target: NatsTarget;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stack-nats-'));
    const secrets = await loadOrCreateSecrets(join(dir, 'secrets.json'));
    await writeLocalNatsConfig(join(dir, 'nats.conf'), secrets);
    nats = await NatsServer.start({ configFile: join(dir, 'nats.conf') });
    const logins = localNatsLogins(secrets);
    target = {
      url: nats.url,
      writeApi: { user: logins.writeApi.NATS_USER, password: logins.writeApi.NATS_PASSWORD },
      gateway: { user: logins.gateway.NATS_USER, password: logins.gateway.NATS_PASSWORD },
      stranger: {},
    };
  });

  afterAll(async () => {
    await nats?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  natsPermissionTests(() => target);

  it('keeps the NATS passwords in secrets.json across restarts, and adds them to an older file without touching its secrets', async () => {
    const path = join(dir, 'secrets.json');
    const first = JSON.parse(await readFile(path, 'utf8'));
    expect(first.nats_write_api_password).toMatch(/^[0-9a-f]{48}$/);
    expect(first.nats_gateway_password).toMatch(/^[0-9a-f]{48}$/);
    expect(first.nats_gateway_password).not.toBe(first.nats_write_api_password);
    expect(await loadOrCreateSecrets(path)).toEqual(first);

    const older = join(dir, 'older-secrets.json');
    await writeFile(older, JSON.stringify({ stream_token_secret: 'kept-1', internal_api_token: 'kept-2' }));
    const upgraded = await loadOrCreateSecrets(older);
    expect(upgraded).toMatchObject({ stream_token_secret: 'kept-1', internal_api_token: 'kept-2' });
    expect(upgraded.nats_write_api_password).toMatch(/^[0-9a-f]{48}$/);
    expect(JSON.parse(await readFile(older, 'utf8'))).toEqual(upgraded);
  });
});

describe('the bundled NATS cluster config (deploy/k8s dev overlay) on a 3-node loopback cluster with TLS', () => {
  let certs: NatsCerts;
  let cluster: BundledNatsCluster;
  let target: NatsTarget;

  beforeAll(async () => {
    const objects = await renderKustomization('deploy/k8s/overlays/dev');
    const config = findObject(objects, 'ConfigMap', 'nats-config').data?.['nats.conf'] ?? '';
    certs = await createNatsCerts();
    // The pods' environment as the render wires it: the passwords from the dev overlay's example Secret.
    const natsEnv = containerEnv(objects, findObject(objects, 'StatefulSet', 'nats'), 'nats');
    cluster = await startBundledNatsCluster(config, { certs, env: natsEnv });
    // Each service's login as its Deployment passes it; its TLS files are the ones its Secret would mount.
    const loginOf = (deployment: string) => {
      const env = containerEnv(objects, findObject(objects, 'Deployment', deployment), deployment);
      return { user: env.NATS_USER, password: env.NATS_PASSWORD };
    };
    target = {
      url: cluster.nodes[0]?.url ?? '',
      peerUrl: cluster.nodes[2]?.url ?? '',
      writeApi: { ...loginOf('write-api'), tls: certs.writeApi },
      gateway: { ...loginOf('stream-gateway'), tls: certs.gateway },
      // The worst case: a client certificate that leaked, without a login.
      stranger: { tls: certs.gateway },
    };
  }, 60_000);

  afterAll(async () => {
    await cluster?.stop();
    await certs?.dispose();
  });

  natsPermissionTests(() => target);

  it('refuses a valid login without a client certificate from the CA', async () => {
    let outcome = 'connected';
    try {
      const connection = await connect({
        servers: target.url,
        timeout: 2000,
        maxReconnectAttempts: 0,
        // Otherwise the client moves on to the nodes the server advertised and tries them in turn.
        ignoreClusterUpdates: true,
        user: target.gateway.user,
        pass: target.gateway.password,
        tls: { caFile: certs.server.caFile },
      });
      await connection.close();
    } catch (error) {
      // The server ends the TLS handshake that lacks a certificate, and the client times out waiting.
      outcome = (error as Error).name;
    }
    expect(outcome).toBe('TimeoutError');
  }, 15_000);

  it('requires TLS with client certificates and closes a plain-text CONNECT, even with a valid login', async () => {
    const [host, port] = new URL(target.url).host.split(':');
    const socket = createConnection({ host, port: Number(port) });
    try {
      const lines = createInterface({ input: socket })[Symbol.asyncIterator]();
      const info = JSON.parse(String((await lines.next()).value).replace(/^INFO /, ''));
      expect(info).toMatchObject({ tls_required: true, tls_verify: true, auth_required: true });
      const login = {
        user: target.gateway.user,
        pass: target.gateway.password,
        verbose: false,
        pedantic: false,
      };
      socket.write(`CONNECT ${JSON.stringify(login)}\r\nPING\r\n`);
      const answers: string[] = [];
      for (let next = await lines.next(); !next.done; next = await lines.next())
        answers.push(String(next.value));
      expect(answers).not.toContain('PONG');
    } finally {
      socket.destroy();
    }
  });

  it("answers /healthz on every node's monitoring port (the StatefulSet's probes)", async () => {
    for (const port of cluster.monitorPorts) {
      const response = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(response.status).toBe(200);
    }
  });
});
