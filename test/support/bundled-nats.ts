import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, NatsServer, waitForPort } from '@wizard-stream/testkit';
import type { NatsCerts } from './nats-certs.js';

/** Where the StatefulSet mounts things, and what replaces each on loopback. */
const MOUNTED_TLS = {
  '/etc/nats-tls/ca.crt': (certs: NatsCerts) => certs.server.caFile,
  '/etc/nats-tls/tls.crt': (certs: NatsCerts) => certs.server.certFile,
  '/etc/nats-tls/tls.key': (certs: NatsCerts) => certs.server.keyFile,
};

export interface BundledNatsCluster {
  nodes: NatsServer[];
  /** Each node's monitoring port (the StatefulSet's probes ask its /healthz). */
  monitorPorts: number[];
  stop(): Promise<void>;
}

/**
 * The nats.conf of deploy/k8s/base/nats.yaml as nats-server reads it in the pods, moved to loopback:
 * the mounted certificate paths become the test's files, the peers' DNS names 127.0.0.1 ports, and the
 * pid file and monitoring port free ones. Everything else (users, permissions, TLS settings) is kept,
 * and each substitution must find its text, so a changed manifest fails here instead of testing less.
 */
function localize(
  config: string,
  options: { certs: NatsCerts; clusterPorts: number[]; node: number; monitorPort: number; pidFile: string },
): string {
  const replaceOnce = (text: string, from: string | RegExp, to: string) => {
    const replaced = text.replace(from, to);
    if (replaced === text) throw new Error(`the bundled nats.conf no longer contains ${String(from)}`);
    return replaced;
  };
  let localized = config;
  for (const [mounted, local] of Object.entries(MOUNTED_TLS)) {
    localized = localized.replaceAll(mounted, local(options.certs));
  }
  localized = replaceOnce(localized, /pid_file: "[^"]+"/, `pid_file: "${options.pidFile}"`);
  localized = replaceOnce(localized, /http_port: \d+/, `http_port: ${options.monitorPort}`);
  localized = replaceOnce(
    localized,
    /(cluster \{[\s\S]*?)port: 6222/,
    `$1port: ${options.clusterPorts[options.node]}`,
  );
  const routed = localized.replace(/nats:\/\/nats-(\d+)\.nats-headless:6222/g, (_, ordinal: string) => {
    const port = options.clusterPorts[Number(ordinal)];
    if (port === undefined) throw new Error(`the routes name nats-${ordinal}, beyond the cluster's size`);
    return `nats://127.0.0.1:${port}`;
  });
  if (routed === localized) throw new Error('the bundled nats.conf no longer routes to nats-N.nats-headless');
  localized = routed;
  return localized;
}

/**
 * Starts the bundled NATS config as a `size`-node cluster on loopback (TLS on clients and routes, the
 * users of the config), with `env` as the pods' environment (the passwords the config reads).
 */
export async function startBundledNatsCluster(
  config: string,
  { certs, env, size = 3 }: { certs: NatsCerts; env: Record<string, string>; size?: number },
): Promise<BundledNatsCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'bundled-nats-'));
  const clusterPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const monitorPorts = await Promise.all(Array.from({ length: size }, () => freePort()));
  const nodes: NatsServer[] = [];
  const stop = async () => {
    await Promise.allSettled(nodes.map((node) => node.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let node = 0; node < size; node++) {
      const file = join(dir, `nats-${node}.conf`);
      await writeFile(
        file,
        localize(config, {
          certs,
          clusterPorts,
          node,
          monitorPort: monitorPorts[node] as number,
          pidFile: join(dir, `nats-${node}.pid`),
        }),
      );
      nodes.push(await NatsServer.start({ configFile: file, env: { ...env, SERVER_NAME: `nats-${node}` } }));
    }
    await Promise.all(monitorPorts.map((port) => waitForPort(port, 10_000)));
  } catch (error) {
    await stop();
    throw error;
  }
  return { nodes, monitorPorts, stop };
}
