import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './manifests.js';

const run = promisify(execFile);

/** One party's TLS files, as the Secrets of deploy/ hold them (ca.crt, tls.crt, tls.key). */
export interface TlsFiles {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface NatsCerts {
  dir: string;
  /** The NATS servers' certificate: client port and cluster routes (serverAuth + clientAuth). */
  server: TlsFiles;
  writeApi: TlsFiles;
  gateway: TlsFiles;
  /** Removes the directory. */
  dispose(): Promise<void>;
}

/**
 * Makes the dev overlay's certificates with deploy/k8s/overlays/dev/nats-certs.sh (openssl) into a
 * temporary directory: what an operator runs to create the nats-tls, write-api-nats-tls and
 * stream-gateway-nats-tls Secrets, and what tests use to start the bundled NATS config.
 */
export async function createNatsCerts(namespace = 'wizard-stream-dev'): Promise<NatsCerts> {
  const dir = await mkdtemp(join(tmpdir(), 'nats-certs-'));
  try {
    await run('sh', [join(REPO_ROOT, 'deploy/k8s/overlays/dev/nats-certs.sh'), dir, namespace]);
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`nats-certs.sh failed: ${(error as Error).message}`);
  }
  const files = (name: string): TlsFiles => ({
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
  });
  return {
    dir,
    server: files('nats'),
    writeApi: files('write-api'),
    gateway: files('stream-gateway'),
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
