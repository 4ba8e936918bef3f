import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '@wizard-stream/testkit';
import { type K8sObject, REPO_ROOT, renderKustomization } from '../../support/manifests.js';
import { createNatsCerts, type TlsFiles } from '../../support/nats-certs.js';
import { isAlive, killQuietly } from '../processes.js';
import { type DeploymentImages, ensureDeploymentImages } from './images.js';
import { type KubePlayPlan, type PlannedPod, planKubePlay, secretPayload } from './kube-play.js';
import { inspect, podman, tryPodman } from './podman.js';
import { ThrowawayPostgres } from './postgres.js';

/** Every name a run creates starts with `wsdeploy-<pid>-`: runs never share one, and leftovers of a dead pid are swept. */
const NAME_PATTERN = /^wsdeploy-(\d+)-[0-9a-f]+/;
/** The Secret the manifests expect to be created out of band (docs/operations.md, "Deploy"). */
const DATABASE_SECRET = 'wizard-stream-database';
/** The NATS certificate Secrets (docs/operations.md, "Security"), made with the dev overlay's nats-certs.sh. */
const TLS_SECRETS = {
  'nats-tls': 'server',
  'write-api-nats-tls': 'writeApi',
  'stream-gateway-nats-tls': 'gateway',
} as const;
/** The Secrets the manifests expect to be created out of band; a run creates them itself. */
export const EXTERNAL_SECRETS = [DATABASE_SECRET, ...Object.keys(TLS_SECRETS)];
const READY_TIMEOUT_MS = 90_000;

export interface DeploymentOptions {
  /** A kustomize directory relative to the repository root. */
  overlay: string;
  /** Deployment name → replicas, as `kubectl scale` would set them. */
  replicas?: Record<string, number>;
  log?: (line: string) => void;
}

function ipToNumber(ip: string): number {
  return ip.split('.').reduce((value, octet) => value * 256 + Number(octet), 0);
}

function numberToIp(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** Host addresses of an IPv4 subnet from the 10th on, without the gateway. */
export function podAddresses(subnet: string, gateway: string, count = 40): string[] {
  const [network = '', bits = '24'] = subnet.split('/');
  const size = 2 ** (32 - Number(bits));
  const first = ipToNumber(network);
  const addresses: string[] = [];
  for (let offset = 10; offset < size - 1 && addresses.length < count; offset++) {
    const address = numberToIp(first + offset);
    if (address !== gateway) addresses.push(address);
  }
  return addresses;
}

/** The local image that stands in for each rendered one: ours by repository name, NATS by the base. */
function localImages(objects: K8sObject[], images: DeploymentImages): Record<string, string> {
  const mapping: Record<string, string> = {};
  for (const object of objects) {
    const spec = object.spec?.template?.spec;
    for (const container of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
      const image = container.image as string;
      const repository = image.replace(/:[^/:]+$/, '');
      if (repository.endsWith('/write-api')) mapping[image] = images['write-api'].id;
      else if (repository.endsWith('/stream-gateway')) mapping[image] = images['stream-gateway'].id;
      else if (repository === 'nats') mapping[image] = images.nats.id;
    }
  }
  return mapping;
}

async function listNames(kind: 'pod' | 'secret' | 'volume' | 'network'): Promise<string[]> {
  // `pod ps` lists stopped pods too (and has no --all); a failed listing throws, so that removal and
  // the leftover check never pass on an empty list they did not get.
  const args = kind === 'pod' ? ['pod', 'ps'] : [kind, 'ls'];
  const names = await podman([...args, '--format', '{{.Name}}']);
  return names.split('\n').filter((name) => NAME_PATTERN.test(name));
}

const ownedBy = (prefix: string, names: string[]) =>
  names.filter((name) => name === prefix || name.startsWith(`${prefix}-`));

/** Removes the pods whose names start with `prefix`. */
async function removePods(prefix: string): Promise<void> {
  // One call per pod, all at once: each waits seconds for its cgroup to go, and one `pod rm` of many
  // pods removes them one after the other.
  await Promise.all(
    ownedBy(prefix, await listNames('pod')).map((pod) =>
      tryPodman(['pod', 'rm', '--force', '--time', '0', pod], { timeoutMs: 120_000 }),
    ),
  );
}

/** Removes the secrets, volumes and networks whose names start with `prefix` (after its pods). */
async function removeResources(prefix: string): Promise<void> {
  const secrets = ownedBy(prefix, await listNames('secret'));
  if (secrets.length > 0) await tryPodman(['secret', 'rm', ...secrets]);
  const volumes = ownedBy(prefix, await listNames('volume'));
  if (volumes.length > 0) await tryPodman(['volume', 'rm', '--force', ...volumes]);
  const networks = ownedBy(prefix, await listNames('network'));
  if (networks.length > 0) await tryPodman(['network', 'rm', '--force', ...networks]);
}

/** What a run left behind if its process died before removing it (a killed test run). */
export async function sweepAbandonedRuns(): Promise<string[]> {
  const owners = new Set<string>();
  for (const kind of ['pod', 'secret', 'volume', 'network'] as const) {
    for (const name of await listNames(kind)) {
      const match = NAME_PATTERN.exec(name);
      if (match && !isAlive(Number(match[1]))) owners.add(match[0]);
    }
  }
  for (const entry of readdirSync(tmpdir())) {
    const match = NAME_PATTERN.exec(entry);
    if (!match || isAlive(Number(match[1]))) continue;
    owners.add(match[0]);
    const pidFile = join(tmpdir(), entry, 'postgres', 'data', 'postmaster.pid');
    if (existsSync(pidFile)) killQuietly(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGINT');
    await rm(join(tmpdir(), entry), { recursive: true, force: true });
  }
  for (const owner of owners) {
    await removePods(owner);
    await removeResources(owner);
  }
  return [...owners];
}

/**
 * The rendered manifests running under podman: NATS, the migrations Job, write-api and stream-gateway
 * pods on a network of their own, against a PostgreSQL server of their own. `start()` follows the order
 * of docs/operations.md ("Deploy") and waits at each step; `remove()` undoes everything, also after a
 * `start()` that failed half-way.
 */
export class PodmanDeployment {
  readonly prefix = `wsdeploy-${process.pid}-${randomBytes(3).toString('hex')}`;
  images: DeploymentImages | undefined;
  objects: K8sObject[] = [];
  plan: KubePlayPlan | undefined;
  network: { name: string; subnet: string; gateway: string } | undefined;
  database: ThrowawayPostgres | undefined;
  /** Exit code and output of the migrations Job's pod. */
  migration: { exitCode: number; logs: string } | undefined;
  readonly timings: Record<string, number> = {};
  private imageMap: Record<string, string> = {};
  private runDirectory: string | undefined;
  private readonly log: (line: string) => void;

  constructor(private readonly options: DeploymentOptions) {
    this.log = options.log ?? (() => {});
  }

  private async timed<T>(step: string, work: () => Promise<T>): Promise<T> {
    const startedAt = Date.now();
    this.log(`${step}…`);
    try {
      return await work();
    } finally {
      this.timings[step] = (this.timings[step] ?? 0) + Date.now() - startedAt;
    }
  }

  async start(): Promise<void> {
    const swept = await sweepAbandonedRuns();
    if (swept.length > 0) this.log(`removed what earlier runs left behind: ${swept.join(', ')}`);
    this.images = await this.timed('images', () => ensureDeploymentImages());
    this.objects = await this.timed('render', () => renderKustomization(this.options.overlay));
    this.runDirectory = await mkdtemp(join(tmpdir(), `${this.prefix}-`));
    // The PostgreSQL account must reach its directory inside this one.
    await chmod(this.runDirectory, 0o755);
    await mkdir(join(this.runDirectory, 'kube'));

    await podman(['network', 'create', '--disable-dns', this.prefix]);
    const [subnet] = (await inspect('network', this.prefix)).subnets as { subnet: string; gateway: string }[];
    if (!subnet) throw new Error(`network ${this.prefix} has no subnet`);
    this.network = { name: this.prefix, subnet: subnet.subnet, gateway: subnet.gateway };

    this.imageMap = localImages(this.objects, this.images);
    const plan = planKubePlay(this.objects, {
      prefix: this.prefix,
      addresses: podAddresses(subnet.subnet, subnet.gateway),
      images: this.imageMap,
      ...(this.options.replicas ? { replicas: this.options.replicas } : {}),
      externalSecrets: EXTERNAL_SECRETS,
      serviceProxy: {
        image: this.images.base.id,
        script: await readFile(join(REPO_ROOT, 'deploy', 'podman', 'service-proxy.mjs'), 'utf8'),
      },
    });
    this.plan = plan;

    // 1. Secrets and config (ConfigMaps travel with each pod's kube play input).
    for (const secret of plan.secrets) {
      if (secret.data) await this.createSecret(secret.source, secret.data);
    }
    await this.createTlsSecrets();
    // 2. NATS, and the Services' stand-ins.
    await this.timed('nats', async () => {
      const nats = this.podsOf('StatefulSet/nats');
      await Promise.all([...this.podsOf('Service/'), ...nats].map((pod) => this.play(pod)));
      await Promise.all(nats.map((pod) => this.awaitReady(pod)));
      await until(
        async () =>
          (await Promise.all(nats.map((pod) => this.natsRoutes(pod)))).every((n) => n === nats.length - 1),
        {
          timeoutMs: 30_000,
          intervalMs: 200,
          what: `a full mesh of ${nats.length} NATS nodes`,
        },
      );
    });
    // The pods' gateway address exists once the first pod is on the network: PostgreSQL listens there.
    this.database = await this.timed('postgres', () =>
      ThrowawayPostgres.start({
        directory: join(this.runDirectory as string, 'postgres'),
        listenAddress: subnet.gateway,
        allowedCidr: subnet.subnet,
      }),
    );
    await this.createSecret(DATABASE_SECRET, { url: Buffer.from(this.database.url).toString('base64') });
    // 3. Migrations: the Job's pod runs once and must exit 0.
    await this.timed('migrations', async () => {
      for (const pod of this.podsOf('Job/')) {
        await this.play(pod);
        for (const container of pod.containers) {
          const exitCode = Number(
            (await podman(['wait', container.podmanName], { timeoutMs: 120_000 })).trim(),
          );
          const logs = await this.logs(container.podmanName);
          this.migration = { exitCode, logs };
          if (exitCode !== 0) throw new Error(`${pod.owner} exited with ${exitCode}:\n${logs}`);
        }
      }
    });
    // 4. write-api, 5. gateways.
    for (const owner of ['Deployment/write-api', 'Deployment/stream-gateway']) {
      await this.timed(owner, async () => {
        const pods = this.podsOf(owner);
        await Promise.all(pods.map((pod) => this.play(pod)));
        await Promise.all(pods.map((pod) => this.awaitReady(pod)));
      });
    }
  }

  /** The id of the local image that runs in place of a rendered one. */
  localImage(rendered: string): string | undefined {
    return this.imageMap[rendered];
  }

  /** Planned pods of an owner (`Deployment/write-api`), or of every owner starting with it (`Service/`). */
  podsOf(owner: string): PlannedPod[] {
    return (this.plan?.pods ?? []).filter((pod) =>
      owner.endsWith('/') ? pod.owner.startsWith(owner) : pod.owner === owner,
    );
  }

  /** `http://<pod ip>:<port>` of a pod's first readiness-probed container (or the given port). */
  urlOf(pod: PlannedPod, port?: number): string {
    const probed = pod.containers.find((container) => container.readiness)?.readiness?.port;
    const chosen = port ?? probed;
    if (chosen === undefined) throw new Error(`${pod.name} has no readiness port; pass one`);
    return `http://${pod.ip}:${chosen}`;
  }

  /**
   * The certificates for the namespace the manifests render into, so the NATS certificate's names
   * (nats.<namespace>, *.nats-headless…) are the ones the pods' hostAliases give. Their directory goes at once.
   */
  private async createTlsSecrets(): Promise<void> {
    const namespace = this.objects.find((object) => object.metadata.namespace)?.metadata.namespace;
    const certs = await createNatsCerts(namespace);
    try {
      for (const [source, party] of Object.entries(TLS_SECRETS)) {
        const files: TlsFiles = certs[party];
        const base64 = async (file: string) => (await readFile(file)).toString('base64');
        await this.createSecret(source, {
          'ca.crt': await base64(files.caFile),
          'tls.crt': await base64(files.certFile),
          'tls.key': await base64(files.keyFile),
        });
      }
    } finally {
      await certs.dispose();
    }
  }

  /** Creates a planned Secret from its base64 values, in the form podman reads for its use. */
  private async createSecret(source: string, data: Record<string, string>): Promise<void> {
    const secret = this.plan?.secrets.find((candidate) => candidate.source === source);
    if (!secret) throw new Error(`Secret ${source} is not in the plan`);
    // From a file: podman reads `-` only from a pipe, and Node gives children a socket.
    const file = join(this.runDirectory as string, `secret-${source}.json`);
    await writeFile(file, secretPayload(secret, data), { mode: 0o600 });
    try {
      await podman(['secret', 'create', secret.name, file]);
    } finally {
      await rm(file, { force: true });
    }
  }

  private async play(pod: PlannedPod): Promise<void> {
    const file = join(this.runDirectory as string, 'kube', `${pod.shortName}.yaml`);
    await writeFile(file, pod.yaml);
    await podman(['kube', 'play', '--network', this.prefix, '--ip', pod.ip, file], { timeoutMs: 120_000 });
  }

  async logs(container: string): Promise<string> {
    const result = await tryPodman(['logs', container]);
    return `${result.stdout}${result.stderr}`.slice(-20_000);
  }

  /** Polls each container's readiness probe until it answers 2xx; fails early, with logs, if one exits. */
  async awaitReady(pod: PlannedPod, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    for (const container of pod.containers) {
      const { readiness } = container;
      if (!readiness) continue;
      const url = `http://${pod.ip}:${readiness.port}${readiness.path}`;
      let stateCheckedAt = Date.now();
      try {
        await until(
          async () => {
            const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
              async (response) => {
                await response.arrayBuffer();
                return response.ok;
              },
              () => false,
            );
            if (ok || Date.now() - stateCheckedAt < 2000) return ok;
            stateCheckedAt = Date.now();
            const state = (await inspect('container', container.podmanName)).State;
            if (state.Status === 'exited')
              throw new Error(`${container.podmanName} exited with ${state.ExitCode}`);
            return false;
          },
          { timeoutMs, intervalMs: 200, what: `${url} answering 2xx` },
        );
      } catch (error) {
        throw new Error(
          `${(error as Error).message}\n--- ${container.podmanName}:\n${await this.logs(container.podmanName)}`,
        );
      }
    }
  }

  /** The number of cluster routes a NATS pod reports (-1 while it does not answer). */
  async natsRoutes(pod: PlannedPod): Promise<number> {
    try {
      const response = await fetch(`${this.urlOf(pod)}/routez`, { signal: AbortSignal.timeout(2000) });
      return ((await response.json()) as { num_routes: number }).num_routes;
    } catch {
      return -1;
    }
  }

  /** Client addresses connected to a NATS pod right now (empty while it does not answer). */
  async natsClients(pod: PlannedPod): Promise<string[]> {
    try {
      const response = await fetch(`${this.urlOf(pod)}/connz`, { signal: AbortSignal.timeout(2000) });
      return (
        ((await response.json()) as { connections?: { ip: string }[] }).connections?.map((c) => c.ip) ?? []
      );
    } catch {
      return [];
    }
  }

  /** SIGKILL to every container of the pod, as a crashed node would die; nothing restarts it. */
  async kill(pod: PlannedPod): Promise<void> {
    await podman(['pod', 'kill', '--signal', 'KILL', pod.name]);
  }

  /** Removes every pod, secret, volume and network of this run, its PostgreSQL and its files. Idempotent. */
  async remove(): Promise<void> {
    await this.timed('remove pods', () => removePods(this.prefix));
    await this.timed('remove the rest', async () => {
      await removeResources(this.prefix);
      await this.database?.stop();
      this.database = undefined;
      if (this.runDirectory) await rm(this.runDirectory, { recursive: true, force: true });
    });
  }

  /** What of this run still exists: podman objects by name, and its directory. */
  async leftovers(): Promise<string[]> {
    const names: string[] = [];
    for (const kind of ['pod', 'secret', 'volume', 'network'] as const) {
      for (const name of ownedBy(this.prefix, await listNames(kind))) names.push(`${kind} ${name}`);
    }
    if (this.runDirectory && existsSync(this.runDirectory)) names.push(`directory ${this.runDirectory}`);
    return names;
  }
}
