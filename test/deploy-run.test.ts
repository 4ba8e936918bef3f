import { randomBytes } from 'node:crypto';
import { sessionsUrl, streamUrl, type UpsertSessionBody } from '@wizard-stream/contracts';
import { openDatabase, type SeededMember, seedTeamWithMember } from '@wizard-stream/db';
import { until } from '@wizard-stream/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isUrlConnectedToNats, RoundRobinBalancer } from './src/fleet.js';
import { plainNatsConnect } from './src/nats-plain.js';
import { EXTERNAL_SECRETS, PodmanDeployment, podAddresses } from './src/podman/deployment.js';
import { type KubePlayPlan, type PlannedPod, planKubePlay } from './src/podman/kube-play.js';
import { inspect, podman, tryPodman } from './src/podman/podman.js';
import { probePodman } from './src/podman/probe.js';
import { isAlive } from './src/processes.js';
import { ReconnectingStream } from './src/reconnecting-sse.js';
import { required } from './src/required.js';
import {
  findObject,
  type K8sObject,
  parseYamlDocuments,
  podSpecOf,
  renderKustomization,
} from './support/manifests.js';

/**
 * Issue 13: the deployment runs. Builds both images from deploy/docker (only the Node base swapped, by
 * the NODE_IMAGE build arg: nothing can be pulled here), renders deploy/k8s/overlays/dev, and starts it
 * with podman in the order docs/operations.md gives: a 3-node NATS cluster, the migrations Job, write-api
 * × 2 and stream-gateway × 2 (scaled up from the overlay's 1, as `kubectl scale` would), against a
 * PostgreSQL server of its own. test/src/podman/kube-play.ts stands in for what kube play lacks
 * (StatefulSet, Job, Service). Then: a push crosses NATS nodes to an SSE stream; every stream converges
 * through a NATS pod kill and a gateway pod kill; the containers run as the manifests say; and
 * everything it made is removed (built images stay cached, keyed on their inputs).
 *
 * Skips, saying what is missing, only when this machine cannot run containers with podman.
 */

const probe = await probePodman();
const missing = probe.ok ? '' : probe.missing.join('; ');
if (!probe.ok) {
  console.warn(
    `\n${'!'.repeat(100)}\n!! deploy-run.test.ts SKIPPED: podman cannot run containers on this machine. Missing:\n!!   - ${probe.missing.join('\n!!   - ')}\n!! Install them (node scripts/ensure-deps.mjs --podman, as root) to run the deployment test.\n${'!'.repeat(100)}\n`,
  );
}

/** SPEC §8 (a): the latest state within 10 s after a NATS outage or a gateway restart. */
const CONVERGENCE_BUDGET_MS = 10_000;
/** Bound on the fleet's recovery after the kills (clients reconnected to NATS, streams open again). */
const RECOVERY_TIMEOUT_MS = 30_000;
const STREAM_COUNT = 8;
const SESSION_COUNT = 4;
const ROUNDS = 5;
const KILL_GATEWAY_IN_ROUND = 3;
const KILL_NATS_IN_ROUND = 4;

const reconnectDelayMs = (attempt: number) => Math.min(2000, 150 * 2 ** (attempt - 1)) * (1 + Math.random());

/** Kubernetes' memory quantity (`256Mi`, `1Gi`, `500M`) in bytes. */
function memoryBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity);
  if (!match) throw new Error(`cannot read memory quantity ${quantity}`);
  const units: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 };
  return Number(match[1]) * (units[match[2] ?? ''] ?? 1);
}

/** A CPU quantity (`500m`, `1`) in nano-CPUs, as podman stores the limit. */
const nanoCpus = (quantity: string) =>
  quantity.endsWith('m') ? Number(quantity.slice(0, -1)) * 1e6 : Number(quantity) * 1e9;

const renderedImages = {
  'registry.example.com/wizard-stream/write-api:dev': 'local-write-api',
  'registry.example.com/wizard-stream/stream-gateway:dev': 'local-stream-gateway',
  'nats:2.10-alpine': 'local-nats',
};

/** A pod's kube play input, parsed back: its ConfigMaps and the Pod (last). */
function playDocuments(pod: PlannedPod): { configMaps: K8sObject[]; pod: K8sObject } {
  const documents = parseYamlDocuments(pod.yaml, pod.name) as K8sObject[];
  return { configMaps: documents.slice(0, -1), pod: documents.at(-1) as K8sObject };
}

describe('the kube play plan of the dev overlay (needs no podman)', () => {
  let objects: K8sObject[];
  let plan: KubePlayPlan;
  const options = {
    prefix: 'wsdeploy-1-abc',
    addresses: podAddresses('10.89.7.0/24', '10.89.7.1'),
    images: renderedImages,
    replicas: { 'write-api': 2, 'stream-gateway': 2 },
    externalSecrets: EXTERNAL_SECRETS,
    serviceProxy: { image: 'local-base', script: '// proxy' },
  };
  const podsOf = (owner: string) => plan.pods.filter((pod) => pod.owner === owner);
  const aliasOf = (pod: PlannedPod, hostname: string) =>
    (playDocuments(pod).pod.spec.hostAliases as { ip: string; hostnames: string[] }[]).find((alias) =>
      alias.hostnames.includes(hostname),
    )?.ip;

  beforeAll(async () => {
    objects = await renderKustomization('deploy/k8s/overlays/dev');
    plan = planKubePlay(objects, options);
  }, 30_000);

  it('runs each workload as pods: 3 NATS, the Job once, the Deployments scaled; lists what it does not run', () => {
    expect(podsOf('StatefulSet/nats').map((pod) => pod.shortName)).toEqual(['nats-0', 'nats-1', 'nats-2']);
    expect(podsOf('Job/write-api-migrate').map((pod) => pod.runsOnce)).toEqual([true]);
    expect(podsOf('Deployment/write-api').map((pod) => pod.shortName)).toEqual([
      'write-api-0',
      'write-api-1',
    ]);
    expect(podsOf('Deployment/stream-gateway')).toHaveLength(2);
    // Services that map ports get a proxy pod; `nats` keeps its port and names a node per client.
    expect(plan.pods.filter((pod) => pod.owner.startsWith('Service/')).map((pod) => pod.owner)).toEqual([
      'Service/stream-gateway',
      'Service/write-api',
    ]);
    expect(plan.notRun.map((entry) => entry.object).sort()).toEqual([
      'HorizontalPodAutoscaler/stream-gateway',
      'Ingress/wizard-stream-api',
      'Ingress/wizard-stream-sse',
      'Namespace/wizard-stream-dev',
      'NetworkPolicy/default-deny-ingress',
      'NetworkPolicy/nats',
      'NetworkPolicy/stream-gateway',
      'NetworkPolicy/write-api',
      'PodDisruptionBudget/nats',
      'PodDisruptionBudget/stream-gateway',
      'PodDisruptionBudget/write-api',
      'Service/nats-headless',
    ]);
    // The readiness checks to poll are the manifests' own probes.
    expect(podsOf('Deployment/write-api')[0]?.containers[0]?.readiness).toEqual({
      path: '/readyz',
      port: 8000,
    });
    expect(podsOf('StatefulSet/nats')[0]?.containers[0]?.readiness).toEqual({ path: '/healthz', port: 8222 });
    expect(new Set(plan.pods.map((pod) => pod.ip)).size).toBe(plan.pods.length);
  });

  it('hands kube play Pods without ports or probes, on local images, with every name prefixed per run', () => {
    for (const planned of plan.pods) {
      const { configMaps, pod } = playDocuments(planned);
      expect(pod.kind).toBe('Pod');
      expect(pod.metadata.name).toBe(planned.name);
      expect(planned.name.startsWith(`${options.prefix}-`)).toBe(true);
      for (const configMap of configMaps)
        expect(configMap.metadata.name.startsWith(`${options.prefix}-`)).toBe(true);
      for (const container of pod.spec.containers) {
        for (const field of ['ports', 'startupProbe', 'livenessProbe', 'readinessProbe']) {
          expect(container, `${planned.name}/${container.name}`).not.toHaveProperty(field);
        }
        expect([...Object.values(renderedImages), 'local-base']).toContain(container.image);
        for (const entry of container.env ?? []) {
          const secret = entry.valueFrom?.secretKeyRef?.name;
          if (secret) expect(secret.startsWith(`${options.prefix}-`), secret).toBe(true);
        }
      }
      // An emptyDir belongs to one pod (podman's volume names are global); ConfigMap volumes are renamed.
      for (const volume of pod.spec.volumes ?? []) {
        if (volume.emptyDir) expect(volume.name.startsWith(`${planned.name}-`)).toBe(true);
        if (volume.configMap) {
          expect(configMaps.map((configMap) => configMap.metadata.name)).toContain(volume.configMap.name);
        }
      }
    }
    // The certificates are files (Secret volumes), the passwords and URLs environment variables.
    expect(
      plan.secrets.map((secret) => [secret.source, secret.name, secret.data !== undefined, secret.readAs]),
    ).toEqual([
      ['wizard-stream-nats', `${options.prefix}-wizard-stream-nats`, true, 'env'],
      ['wizard-stream-secrets', `${options.prefix}-wizard-stream-secrets`, true, 'env'],
      ['wizard-stream-database', `${options.prefix}-wizard-stream-database`, false, 'env'],
      ['nats-tls', `${options.prefix}-nats-tls`, false, 'volume'],
      ['write-api-nats-tls', `${options.prefix}-write-api-nats-tls`, false, 'volume'],
      ['stream-gateway-nats-tls', `${options.prefix}-stream-gateway-nats-tls`, false, 'volume'],
    ]);
    const gatewayVolumes = playDocuments(podsOf('Deployment/stream-gateway')[0] as PlannedPod).pod.spec
      .volumes;
    expect(gatewayVolumes.find((volume: { name: string }) => volume.name === 'nats-tls').secret).toEqual({
      secretName: `${options.prefix}-stream-gateway-nats-tls`,
      defaultMode: 0o440,
      optional: false,
    });
  });

  it('resolves Services in every pod: a NATS node per client in turn, proxies for mapped ports, peers by name', () => {
    const nats = podsOf('StatefulSet/nats');
    const clients = [...podsOf('Deployment/write-api'), ...podsOf('Deployment/stream-gateway')];
    const natsOf = clients.map((pod) => aliasOf(pod, 'nats'));
    expect(natsOf.every((ip) => nats.some((node) => node.ip === ip))).toBe(true);
    expect(new Set(natsOf).size).toBe(3);
    expect(aliasOf(clients[0] as PlannedPod, 'nats.wizard-stream-dev.svc.cluster.local')).toBe(natsOf[0]);
    for (const node of nats) {
      expect(aliasOf(nats[0] as PlannedPod, `${node.shortName}.nats-headless`)).toBe(node.ip);
    }
    const writeApiService = required(podsOf('Service/write-api')[0], 'the write-api Service proxy');
    expect(aliasOf(clients[0] as PlannedPod, 'write-api')).toBe(writeApiService.ip);
    const command = playDocuments(writeApiService).pod.spec.containers[0].command as string[];
    expect(JSON.parse(command.at(-1) as string)).toEqual([
      { port: 80, backends: podsOf('Deployment/write-api').map((pod) => `${pod.ip}:8000`) },
      { port: 8002, backends: podsOf('Deployment/write-api').map((pod) => `${pod.ip}:8002`) },
    ]);
  });

  it('refuses what it cannot stand in for: an unknown kind, an image with no local build, an unknown Secret', () => {
    const cronJob = { apiVersion: 'batch/v1', kind: 'CronJob', metadata: { name: 'nightly' }, spec: {} };
    expect(() => planKubePlay([...objects, cronJob], options)).toThrow(
      /CronJob\/nightly: no podman counterpart/,
    );
    const { 'nats:2.10-alpine': _nats, ...withoutNats } = renderedImages;
    expect(() => planKubePlay(objects, { ...options, images: withoutNats })).toThrow(
      /StatefulSet\/nats: no local image stands in for nats:2.10-alpine/,
    );
    const withoutDatabase = EXTERNAL_SECRETS.filter((name) => name !== 'wizard-stream-database');
    expect(() => planKubePlay(objects, { ...options, externalSecrets: withoutDatabase })).toThrow(
      /reads Secret wizard-stream-database, which is neither rendered nor external/,
    );
  });
});

describe.skipIf(!probe.ok)(
  `the dev overlay deployed with podman${probe.ok ? '' : ` — SKIPPED, missing: ${missing}`}`,
  () => {
    const deployment = new PodmanDeployment({
      overlay: 'deploy/k8s/overlays/dev',
      replicas: { 'write-api': 2, 'stream-gateway': 2 },
      log: (line) => console.log(`deploy-run: ${line}`),
    });
    const streams: ReconnectingStream[] = [];
    let team: SeededMember;
    const startedAt = Date.now();

    const writeApis = () => deployment.podsOf('Deployment/write-api');
    const gateways = () => deployment.podsOf('Deployment/stream-gateway');
    const natsNodes = () => deployment.podsOf('StatefulSet/nats');

    beforeAll(async () => {
      await deployment.start();
      const database = await openDatabase({ url: deployment.database?.url });
      try {
        team = await seedTeamWithMember(database.db, {
          teamName: 'deploy-run',
          email: `deploy-run-${randomBytes(4).toString('hex')}@example.com`,
        });
      } finally {
        await database.close();
      }
    }, 12 * 60_000);

    afterAll(async () => {
      for (const stream of streams) stream.stop();
      await deployment.remove();
      const images = deployment.images;
      console.log(
        JSON.stringify({
          deployRun: {
            totalMs: Date.now() - startedAt,
            stepsMs: deployment.timings,
            images:
              images && Object.fromEntries(Object.entries(images).map(([name, image]) => [name, image])),
          },
        }),
      );
    }, 180_000);

    /** Which NATS pod each client address is connected to right now. */
    async function natsNodeByClient(): Promise<Map<string, PlannedPod>> {
      const byClient = new Map<string, PlannedPod>();
      for (const node of natsNodes())
        for (const ip of await deployment.natsClients(node)) byClient.set(ip, node);
      return byClient;
    }

    async function upsert(writeApi: PlannedPod, body: UpsertSessionBody): Promise<number> {
      const response = await fetch(sessionsUrl(deployment.urlOf(writeApi), team.teamId), {
        method: 'POST',
        headers: { authorization: `Bearer ${team.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      const text = await response.text();
      if (response.status !== 200 && response.status !== 201) {
        throw new Error(`upsert of ${body.session_id} via ${writeApi.name} → ${response.status} ${text}`);
      }
      return JSON.parse(text).version as number;
    }

    /** A stream like a browser's behind a load balancer; every one is stopped in afterAll. */
    function openStream(workflowId: string, pickServer: () => string): ReconnectingStream {
      const url = new URL(streamUrl('http://gateway', team.teamId, workflowId));
      const stream = new ReconnectingStream({
        path: `${url.pathname}${url.search}`,
        headers: { authorization: `Bearer ${team.apiKey}` },
        pickServer,
        reconnectDelayMs,
      });
      streams.push(stream);
      return stream;
    }

    it('runs the dev overlay (dev image tags) as the planned pods, each running (the Job exited)', async () => {
      const image = (kind: string, name: string) =>
        podSpecOf(findObject(deployment.objects, kind, name)).containers[0].image;
      // The overlay's `images:` must match the base's renamed images, or its tag changes nothing.
      expect(image('Deployment', 'write-api')).toBe('registry.example.com/wizard-stream/write-api:dev');
      expect(image('Deployment', 'stream-gateway')).toBe(
        'registry.example.com/wizard-stream/stream-gateway:dev',
      );
      const planned = required(deployment.plan, 'a kube play plan').pods;
      expect(planned).toHaveLength(10);
      for (const pod of planned) {
        const state = (await inspect('pod', pod.name)).State;
        expect(state, pod.name).toBe(pod.runsOnce ? 'Exited' : 'Running');
      }
    });

    it('forms a 3-node NATS cluster and migrates its own PostgreSQL with the Job, which exits 0', async () => {
      for (const node of natsNodes()) expect(await deployment.natsRoutes(node), node.name).toBe(2);
      const migration = required(deployment.migration, 'the migrations Job result');
      expect(migration.exitCode).toBe(0);
      const line = migration.logs.split('\n').find((candidate) => candidate.includes('migrations applied'));
      expect((JSON.parse(line ?? '{}').applied as string[] | undefined)?.length).toBeGreaterThan(0);
      // The Job ran the write-api image with --migrate-only, as the manifest says.
      const job = required(deployment.podsOf('Job/write-api-migrate')[0], 'the Job pod');
      const container = await inspect(
        'container',
        required(job.containers[0], 'the Job container').podmanName,
      );
      // A pod's `command` becomes the entrypoint (a string in podman 4, a list in 5).
      const argv = [container.Config.Entrypoint, container.Config.Cmd].flat().filter(Boolean).join(' ');
      expect(argv).toBe('node main.js --migrate-only');
      expect(container.Image).toBe(deployment.images?.['write-api'].id);
      expect(container.State.Status).toBe('exited');
    });

    it('requires TLS and a login on every NATS node: a plain anonymous client is refused, the services use both', async () => {
      const users = new Set<string>();
      for (const node of natsNodes()) {
        const attempt = await plainNatsConnect(node.ip, 4222);
        expect(attempt.info, node.name).toMatchObject({ tls_required: true, auth_required: true });
        expect(attempt.reply, node.name).not.toContain('PONG');
        const response = await fetch(`${deployment.urlOf(node)}/connz?auth=1`);
        const { connections = [] } = (await response.json()) as {
          connections?: { tls_version?: string; authorized_user?: string }[];
        };
        for (const connection of connections) {
          expect(connection.tls_version, node.name).toMatch(/^1\.[23]$/);
          users.add(connection.authorized_user ?? '(none)');
        }
      }
      expect([...users].sort()).toEqual(['stream-gateway', 'write-api']);
    });

    it('runs every container as the manifests say: its user, read-only root, no capabilities, its limits', async () => {
      const workloadPods = deployment.plan?.pods.filter((pod) => !pod.owner.startsWith('Service/')) ?? [];
      expect(workloadPods).toHaveLength(8);
      for (const pod of workloadPods) {
        for (const container of pod.containers) {
          const what = container.podmanName;
          const { security, manifest } = container;
          expect(security.runAsNonRoot, what).toBe(true);
          const details = await inspect('container', container.podmanName);
          expect(details.Image, `${what} runs the image built for ${manifest.image}`).toBe(
            deployment.localImage(manifest.image),
          );
          expect(details.Config.User, what).toBe(`${security.runAsUser}:${security.runAsGroup}`);
          expect(details.HostConfig.ReadonlyRootfs, what).toBe(true);
          expect(details.EffectiveCaps ?? [], what).toEqual([]);
          expect(details.HostConfig.SecurityOpt, what).toContain('no-new-privileges');
          expect(details.HostConfig.Memory, what).toBe(memoryBytes(manifest.resources.limits.memory));
          expect(details.HostConfig.NanoCpus, what).toBe(nanoCpus(String(manifest.resources.limits.cpu)));
          if (pod.runsOnce) continue;
          // And from inside the running container: the kernel's view of its main process and filesystem.
          const status = await podman(['exec', container.podmanName, 'cat', '/proc/1/status']);
          const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(status)?.[1]?.trim();
          expect(field('Uid')?.split(/\s+/), what).toEqual(Array(4).fill(String(security.runAsUser)));
          expect(field('CapEff'), what).toBe('0000000000000000');
          expect(field('CapBnd'), what).toBe('0000000000000000');
          expect(field('NoNewPrivs'), what).toBe('1');
          expect(field('Seccomp'), what).toBe('2'); // RuntimeDefault: a seccomp filter is active
          const writeRoot = await tryPodman([
            'exec',
            container.podmanName,
            'sh',
            '-c',
            'echo x > /rootfs-probe',
          ]);
          expect(writeRoot.code, `${what} wrote to its root filesystem`).not.toBe(0);
          expect(writeRoot.stderr, what).toMatch(/read-only file system/i);
          // Its emptyDir mounts stay writable for its user.
          for (const mount of manifest.volumeMounts ?? []) {
            if (mount.readOnly) continue;
            const write = await tryPodman([
              'exec',
              container.podmanName,
              'sh',
              '-c',
              `echo x > ${mount.mountPath}/probe`,
            ]);
            expect(write.code, `${what} writing ${mount.mountPath}: ${write.stderr}`).toBe(0);
          }
        }
      }
    }, 60_000);

    it('delivers a push to a write-api pod to an SSE stream on a gateway pod connected to another NATS node', async () => {
      const nodeOf = await natsNodeByClient();
      const pair = writeApis()
        .flatMap((writeApi) => gateways().map((gateway) => ({ writeApi, gateway })))
        .find(
          ({ writeApi, gateway }) =>
            nodeOf.get(writeApi.ip) !== undefined &&
            nodeOf.get(gateway.ip) !== undefined &&
            nodeOf.get(writeApi.ip) !== nodeOf.get(gateway.ip),
        );
      const clients = [...nodeOf].map(([ip, node]) => `${ip}→${node.shortName}`).join(', ');
      const { writeApi, gateway } = required(
        pair,
        `a write-api and a gateway on different NATS nodes (${clients})`,
      );

      const workflowId = 'cross-node';
      const stream = openStream(workflowId, () => deployment.urlOf(gateway));
      // Opening a stream goes through the gateway's WRITE_API_URL (the write-api Service) for its snapshot.
      await stream.open();
      const version = await upsert(writeApi, {
        session_id: 'cross-node-session',
        workflow_id: workflowId,
        skill_id: 'deploy',
        started_at: new Date().toISOString(),
        run_phase: 'running',
        tasks: [
          { id: 'cross', title: `from ${writeApi.shortName} to ${gateway.shortName}`, status: 'in_progress' },
        ],
      });
      await stream.waitFor(() => stream.highestVersion('cross-node-session') === version, {
        timeoutMs: 5000,
        what: `cross-node-session v${version} via ${nodeOf.get(writeApi.ip)?.shortName} → ${nodeOf.get(gateway.ip)?.shortName}`,
      });
      expect(stream.frames.at(-1)?.workflowId).toBe(workflowId);
      expect(stream.connections).toHaveLength(1);
      stream.stop();
    });

    it('converges every stream through a NATS pod kill and a gateway pod kill mid-stream', async () => {
      // Sessions 0–2 move in every round; session 3, the workflow's latest, completes in the round that
      // kills a NATS node and is never pushed again: only delivery through the outage (live, relay or
      // re-snapshot) brings it to the streams.
      const sessions = Array.from({ length: SESSION_COUNT }, (_, index) => ({
        sessionId: `converge-${index}`,
        startedAt: new Date(Date.UTC(2026, 0, 1, 0, index)).toISOString(),
        lastRound: index === SESSION_COUNT - 1 ? KILL_NATS_IN_ROUND : ROUNDS,
      }));
      const finisher = sessions.at(-1) as (typeof sessions)[number];
      const workflowId = 'converge';
      const finalVersions = new Map<string, number>();
      const push = (round: number) =>
        Promise.all(
          sessions.map(async (session, index) => {
            if (round > session.lastRound) return;
            const last = round === session.lastRound;
            const version = await upsert(writeApis()[(index + round) % 2] as PlannedPod, {
              session_id: session.sessionId,
              workflow_id: workflowId,
              skill_id: `skill-${index}`,
              started_at: session.startedAt,
              run_phase: last ? 'completed' : 'running',
              tasks: [{ id: 'round', title: `round ${round}`, status: last ? 'completed' : 'in_progress' }],
            });
            finalVersions.set(
              session.sessionId,
              Math.max(finalVersions.get(session.sessionId) ?? 0, version),
            );
          }),
        );
      const converging: ReconnectingStream[] = [];
      /** Resolves with how long after `since` every stream held the final version of each given session. */
      const awaitConvergence = async (targets: typeof sessions, since: number, what: string) => {
        await Promise.all(
          converging.map((stream) =>
            stream.waitFor(
              () =>
                targets.every(
                  (session) =>
                    stream.highestVersion(session.sessionId) === finalVersions.get(session.sessionId),
                ),
              { timeoutMs: Math.max(0, since + CONVERGENCE_BUDGET_MS - Date.now()), what },
            ),
          ),
        );
        return Date.now() - since;
      };

      await push(1);
      const balancer = new RoundRobinBalancer(gateways().map((gateway) => deployment.urlOf(gateway)));
      converging.push(...Array.from({ length: STREAM_COUNT }, () => openStream(workflowId, balancer.pick)));
      await Promise.all(converging.map((stream) => stream.open()));
      const perGateway = gateways().map(
        (gateway) => converging.filter((stream) => stream.server === deployment.urlOf(gateway)).length,
      );
      expect(perGateway).toEqual([STREAM_COUNT / 2, STREAM_COUNT / 2]);
      await push(2);
      await awaitConvergence(sessions, Date.now(), 'round 2 delivered live');

      const killedGateway = required(gateways()[0], 'a gateway');
      const onKilledGateway = converging.filter(
        (stream) => stream.server === deployment.urlOf(killedGateway),
      );
      let gatewayKilledAt = 0;
      let natsKill: { node: PlannedPod; clients: number } | undefined;
      let duringOutage: Promise<number | Error> | undefined;
      for (let round = 3; round <= ROUNDS; round++) {
        if (round === ROUNDS) {
          // The last round meets a fleet that recovered: every survivor back on NATS, every stream open.
          const survivors = [...writeApis(), ...gateways()].filter((pod) => pod !== killedGateway);
          await until(
            async () =>
              (await Promise.all(survivors.map((pod) => isUrlConnectedToNats(deployment.urlOf(pod))))).every(
                Boolean,
              ),
            {
              timeoutMs: RECOVERY_TIMEOUT_MS,
              intervalMs: 200,
              what: 'write-apis and the surviving gateway back on NATS',
            },
          );
          await Promise.all(
            converging.map((stream) =>
              stream.waitFor(() => stream.isOpen, {
                timeoutMs: RECOVERY_TIMEOUT_MS,
                what: 'a streaming connection',
              }),
            ),
          );
        }
        const inFlight = push(round);
        if (round === KILL_GATEWAY_IN_ROUND) {
          balancer.remove(deployment.urlOf(killedGateway));
          gatewayKilledAt = Date.now();
          await deployment.kill(killedGateway);
        }
        if (round === KILL_NATS_IN_ROUND) {
          const counts = await Promise.all(
            natsNodes().map(async (node) => (await deployment.natsClients(node)).length),
          );
          const busiest = counts.indexOf(Math.max(...counts));
          natsKill = { node: required(natsNodes()[busiest], 'a NATS node'), clients: counts[busiest] ?? 0 };
          await deployment.kill(natsKill.node);
        }
        await inFlight;
        if (round === KILL_NATS_IN_ROUND) {
          // Settled into a value at once: it is awaited only after the recovery wait below.
          duringOutage = awaitConvergence(
            [finisher],
            Date.now(),
            `${finisher.sessionId}, completed during the NATS kill`,
          ).catch((error: Error) => error);
        }
      }
      const lastCommitAt = Date.now();
      const afterLastCommitMs = await awaitConvergence(
        sessions,
        lastCommitAt,
        'the final round after both kills',
      );
      const afterOutageMs = await required(duringOutage, 'the outage round');
      if (afterOutageMs instanceof Error) throw afterOutageMs;
      console.log(JSON.stringify({ deployRunConvergedMs: { afterOutageMs, afterLastCommitMs } }));

      for (const stream of converging) {
        expect(stream.orderViolations()).toEqual([]);
        for (const session of sessions) {
          const last = stream.frames.filter((frame) => frame.sessionId === session.sessionId).at(-1);
          expect(last?.runPhase, session.sessionId).toBe('completed');
        }
      }
      // The faults really hit: the gateway carried streams that resumed elsewhere with Last-Event-ID, and
      // the NATS node carried clients.
      expect(onKilledGateway.length).toBe(STREAM_COUNT / 2);
      for (const stream of onKilledGateway) {
        const resumed = stream.connections.filter(
          (connection) => connection.openedAt >= gatewayKilledAt && connection.status === 200,
        );
        expect(resumed.length).toBeGreaterThan(0);
        for (const connection of resumed) {
          expect(connection.server).not.toBe(deployment.urlOf(killedGateway));
          expect(connection.lastEventIdSent).toBeDefined();
        }
      }
      expect(natsKill?.clients).toBeGreaterThan(0);
      // Nothing else died on the way.
      for (const pod of [...writeApis(), ...gateways(), ...natsNodes()]) {
        if (pod === killedGateway || pod === natsKill?.node) continue;
        const state = (await inspect('container', required(pod.containers[0], 'a container').podmanName))
          .State;
        expect(state.Status, pod.name).toBe('running');
      }
    }, 120_000);

    it('removes every pod, secret, volume and network it made, and its PostgreSQL; keeps the built images', async () => {
      const postgresPid = required(deployment.database?.pid, 'the PostgreSQL server pid');
      for (const stream of streams) stream.stop();
      await deployment.remove();
      expect(await deployment.leftovers()).toEqual([]);
      expect(isAlive(postgresPid)).toBe(false);
      for (const image of Object.values(required(deployment.images, 'the images'))) {
        expect((await tryPodman(['image', 'exists', image.id])).code, image.tag).toBe(0);
      }
    }, 120_000);
  },
);
