import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { envVariables } from '@wizard-stream/contracts';
import {
  createTestDatabase,
  freePort,
  NATS_SERVER_BINARY,
  NatsServer,
  type TestDatabase,
  until,
} from '@wizard-stream/testkit';
import { Deployment } from 'kubernetes-models/apps/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NATS_USERS } from '../scripts/stack/nats-config.js';
import { streamGatewayEnvSchema } from '../services/stream-gateway/src/config.js';
import { writeApiConfigSchema } from '../services/write-api/src/config.js';
import { type BundleProcess, buildBundle, runBundle, stopBundle } from './support/bundles.js';
import { parseDockerfile } from './support/dockerfile.js';
import {
  findObject,
  type K8sObject,
  nginxRegexLocation,
  parseYamlDocuments,
  podSpecOf,
  REPO_ROOT,
  renderKustomization,
  validateAgainstApiSchema,
  workloads,
} from './support/manifests.js';
import { createNatsCerts } from './support/nats-certs.js';
import { admits, type PolicyPeer, type PolicyTarget } from './support/network-policies.js';

const run = promisify(execFile);

/** Secrets the manifests reference but that are created out of band, per overlay. */
const NATS_CERT_SECRETS = ['nats-tls', 'write-api-nats-tls', 'stream-gateway-nats-tls'];
const EXTERNAL_SECRETS: Record<string, string[]> = {
  dev: ['wizard-stream-database', 'wizard-stream-tls', ...NATS_CERT_SECRETS],
  production: [
    'wizard-stream-database',
    'wizard-stream-tls',
    'wizard-stream-secrets',
    'wizard-stream-nats',
    ...NATS_CERT_SECRETS,
  ],
};

// biome-ignore lint/suspicious/noExplicitAny: container specs are plain rendered data
type Container = any;

function containersOf(object: K8sObject): Container[] {
  const spec = podSpecOf(object);
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}

/** The value of an env variable of a container, following envFrom ConfigMaps and plain env entries. */
function envValue(objects: K8sObject[], container: Container, name: string): string | undefined {
  const direct = (container.env ?? []).find((entry: { name: string }) => entry.name === name);
  if (direct?.value !== undefined) return direct.value;
  for (const source of container.envFrom ?? []) {
    if (!source.configMapRef) continue;
    const value = findObject(objects, 'ConfigMap', source.configMapRef.name).data?.[name];
    if (value !== undefined) return value;
  }
  return undefined;
}

function preStopSleepSeconds(container: Container): number {
  const preStop = container.lifecycle?.preStop;
  if (preStop?.sleep?.seconds !== undefined) return Number(preStop.sleep.seconds);
  const command: string[] = preStop?.exec?.command ?? [];
  if (command[0] === 'sleep' && command[1] !== undefined) return Number(command[1]);
  throw new Error(`container ${container.name} has no preStop sleep: ${JSON.stringify(preStop)}`);
}

function selects(
  selector: { matchLabels?: Record<string, string> },
  labels: Record<string, string>,
): boolean {
  const wanted = Object.entries(selector.matchLabels ?? {});
  return wanted.length > 0 && wanted.every(([key, value]) => labels[key] === value);
}

describe('kubernetes-models validation on this Node version', () => {
  it('loads and rejects an object that breaks the API schema', () => {
    // Guards the validators themselves: a schema check that accepts anything would make the checks below moot.
    expect(() =>
      new Deployment({
        metadata: { name: 'broken' },
        spec: { replicas: 'three', template: {} },
      } as never).validate(),
    ).toThrow(/selector|replicas/);
  });
});

describe.each(['dev', 'production'])('the %s overlay', (overlay) => {
  let objects: K8sObject[];
  let writeApi: K8sObject;
  let gateway: K8sObject;

  beforeAll(async () => {
    objects = await renderKustomization(`deploy/k8s/overlays/${overlay}`);
    writeApi = findObject(objects, 'Deployment', 'write-api');
    gateway = findObject(objects, 'Deployment', 'stream-gateway');
  }, 30_000);

  it('renders objects that all validate against the Kubernetes API schemas', () => {
    expect(objects.length).toBeGreaterThan(15);
    for (const object of objects) validateAgainstApiSchema(object);
    const namespaces = new Set(
      objects.filter((o) => o.kind !== 'Namespace').map((o) => o.metadata.namespace),
    );
    expect(namespaces).toEqual(new Set([overlay === 'dev' ? 'wizard-stream-dev' : 'wizard-stream']));
  });

  it('probes /healthz for liveness and /readyz for readiness on both services', () => {
    for (const deployment of [writeApi, gateway]) {
      const [container] = containersOf(deployment);
      expect(container.livenessProbe?.httpGet?.path, deployment.metadata.name).toBe('/healthz');
      expect(container.readinessProbe?.httpGet?.path, deployment.metadata.name).toBe('/readyz');
      const port = container.ports?.find(
        (p: { name: string }) => p.name === container.readinessProbe.httpGet.port,
      );
      expect(port, `${deployment.metadata.name} probe port`).toBeDefined();
      expect(String(port.containerPort)).toBe(envValue(objects, container, 'PORT'));
      expect(envValue(objects, container, 'HOST')).toBe('0.0.0.0');
    }
  });

  it('sets CPU and memory requests and limits on every container', () => {
    const all = workloads(objects).flatMap((workload) => containersOf(workload));
    expect(all.length).toBeGreaterThanOrEqual(4);
    for (const container of all) {
      for (const bound of ['requests', 'limits']) {
        expect(container.resources?.[bound]?.cpu, `${container.name} ${bound}.cpu`).toBeTruthy();
        expect(container.resources?.[bound]?.memory, `${container.name} ${bound}.memory`).toBeTruthy();
      }
    }
  });

  it('has PodDisruptionBudgets selecting the pods of write-api, stream-gateway and NATS', () => {
    const budgets = objects.filter((object) => object.kind === 'PodDisruptionBudget');
    for (const workload of [writeApi, gateway, findObject(objects, 'StatefulSet', 'nats')]) {
      const labels = workload.spec.template.metadata.labels;
      const budget = budgets.find((candidate) => selects(candidate.spec.selector, labels));
      expect(budget, `PDB for ${workload.metadata.name}`).toBeDefined();
      const replicas = workload.spec.replicas as number;
      // A budget that can never be satisfied blocks every node drain.
      if (budget?.spec.minAvailable !== undefined) expect(budget.spec.minAvailable).toBeLessThan(replicas);
      else expect(budget?.spec.maxUnavailable).toBeGreaterThanOrEqual(1);
    }
  });

  it('autoscales the gateway Deployment on CPU and memory', () => {
    const hpa = findObject(objects, 'HorizontalPodAutoscaler', 'stream-gateway');
    expect(hpa.apiVersion).toBe('autoscaling/v2');
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'stream-gateway',
    });
    const resources = hpa.spec.metrics.map((metric: { resource: { name: string } }) => metric.resource.name);
    expect(resources.sort()).toEqual(['cpu', 'memory']);
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(1);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    expect(gateway.spec.replicas).toBeGreaterThanOrEqual(hpa.spec.minReplicas);
  });

  it('gives the gateway a grace period longer than the preStop sleep plus DRAIN_MS', () => {
    const [container] = containersOf(gateway);
    const drainMs = Number(envValue(objects, container, 'DRAIN_MS'));
    expect(drainMs).toBeGreaterThan(0);
    const preStopMs = preStopSleepSeconds(container) * 1000;
    expect(preStopMs).toBeGreaterThan(0);
    expect(podSpecOf(gateway).terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStopMs + drainMs);
    expect(envValue(objects, container, 'MAX_STREAMS')).toMatch(/^\d+$/);
    expect(envValue(objects, container, 'WRITE_API_URL')).toBe('http://write-api');
  });

  it('lets write-api leave the Service before SIGTERM closes its listener, within the grace period', () => {
    const [container] = containersOf(writeApi);
    const preStopMs = preStopSleepSeconds(container) * 1000;
    expect(preStopMs).toBeGreaterThan(0);
    // services/write-api/src/main.ts exits at the latest 15 s after SIGTERM.
    expect(podSpecOf(writeApi).terminationGracePeriodSeconds * 1000).toBeGreaterThan(preStopMs + 15_000);
  });

  it('sets only variables the services read (or the standard OTEL_* ones) in their ConfigMaps', () => {
    for (const [deployment, service] of [
      [writeApi, 'write-api'],
      [gateway, 'stream-gateway'],
    ] as const) {
      const read = envVariables(service === 'write-api' ? writeApiConfigSchema : streamGatewayEnvSchema);
      const [container] = containersOf(deployment);
      const names = [
        ...(container.envFrom ?? []).flatMap((source: Container) =>
          Object.keys(findObject(objects, 'ConfigMap', source.configMapRef.name).data ?? {}),
        ),
        ...(container.env ?? []).map((entry: { name: string }) => entry.name),
      ];
      expect(names.length).toBeGreaterThan(5);
      for (const name of names.filter((candidate) => !candidate.startsWith('OTEL_'))) {
        expect(read, `${service} reads ${name}`).toContain(name);
      }
    }
  });

  it('routes both stream paths to the gateway unbuffered with long timeouts, and the rest to write-api', () => {
    const ingresses = objects.filter((object) => object.kind === 'Ingress');
    const rules = ingresses.flatMap((ingress) =>
      ingress.spec.rules.flatMap((rule: { http: { paths: unknown[] } }) =>
        rule.http.paths.map((path) => ({ ingress, path: path as Container })),
      ),
    );
    const routeOf = (url: string) => {
      const matching = rules.filter(({ path }) =>
        path.pathType === 'ImplementationSpecific'
          ? nginxRegexLocation(path.path).test(url)
          : url.startsWith(path.path),
      );
      // ingress-nginx picks the longest matching location.
      return matching.sort((a, b) => b.path.path.length - a.path.path.length)[0];
    };

    for (const url of [
      '/api/projects/42/wizard/sessions/stream/',
      '/api/projects/42/wizard_sessions/stream/',
    ]) {
      const route = routeOf(url);
      expect(route?.path.backend.service.name, url).toBe('stream-gateway');
      const annotations = route?.ingress.metadata.annotations ?? {};
      expect(annotations['nginx.ingress.kubernetes.io/use-regex']).toBe('true');
      expect(annotations['nginx.ingress.kubernetes.io/proxy-buffering']).toBe('off');
      expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-read-timeout'])).toBeGreaterThanOrEqual(
        3600,
      );
      expect(Number(annotations['nginx.ingress.kubernetes.io/proxy-send-timeout'])).toBeGreaterThanOrEqual(
        3600,
      );
    }
    for (const url of [
      '/api/projects/42/wizard/sessions/',
      '/api/projects/42/wizard/sessions/latest/',
      '/api/projects/42/wizard/sessions/streamed-run/',
      '/api/projects/42/wizard/stream_tokens/',
      '/api/personal_api_keys/',
      '/api/schema/',
    ]) {
      expect(routeOf(url)?.path.backend.service.name, url).toBe('write-api');
    }
    // The services' own endpoints are never public (issue 10): no rule routes them.
    for (const url of ['/metrics', '/readyz', '/healthz', '/']) {
      expect(routeOf(url), url).toBeUndefined();
    }
    // Every backend names an existing Service port, and none is write-api's internal read path.
    for (const { path } of rules) {
      const service = findObject(objects, 'Service', path.backend.service.name);
      const ports = service.spec.ports.map((port: { name: string }) => port.name);
      expect(ports).toContain(path.backend.service.port.name);
      expect(path.backend.service.port.name).toBe('http');
      const port = service.spec.ports.find(
        (p: { name: string }) => p.name === path.backend.service.port.name,
      );
      expect(port.targetPort).toBe('http');
    }
  });

  it("never routes the Ingress to write-api's internal listener, which only the gateways are pointed at", () => {
    const [container] = containersOf(writeApi);
    const internalPort = Number(envValue(objects, container, 'INTERNAL_PORT'));
    expect(internalPort).toBeGreaterThan(0);
    expect(internalPort).not.toBe(Number(envValue(objects, container, 'PORT')));
    const containerPort = (name: string) =>
      container.ports.find((port: { name: string }) => port.name === name)?.containerPort;
    expect(containerPort('internal')).toBe(internalPort);

    const service = findObject(objects, 'Service', 'write-api');
    const servicePorts: { name: string; port: number; targetPort: string | number }[] = service.spec.ports;
    const reachesInternal = (port: { targetPort: string | number }) =>
      port.targetPort === 'internal' || Number(port.targetPort) === internalPort;
    const internalServicePort = servicePorts.find(reachesInternal);
    expect(internalServicePort?.name).toBe('internal');

    // No Ingress path, whatever its host or backend port, ends on the internal listener.
    const backends = objects
      .filter((object) => object.kind === 'Ingress')
      .flatMap((ingress) => [
        ...(ingress.spec.defaultBackend ? [ingress.spec.defaultBackend] : []),
        ...ingress.spec.rules.flatMap((rule: { http: { paths: { backend: unknown }[] } }) =>
          rule.http.paths.map((path) => path.backend),
        ),
      ]) as { service: { name: string; port: { name?: string; number?: number } } }[];
    expect(backends.length).toBeGreaterThan(0);
    for (const backend of backends) {
      if (backend.service.name !== 'write-api') continue;
      const port = servicePorts.find(
        (candidate) =>
          candidate.name === backend.service.port.name || candidate.port === backend.service.port.number,
      );
      expect(port, JSON.stringify(backend)).toBeDefined();
      expect(reachesInternal(port as { targetPort: string | number }), JSON.stringify(backend)).toBe(false);
    }

    // The gateways read snapshots on the public port and re-snapshot on the internal one.
    const [gatewayContainer] = containersOf(gateway);
    const internalUrl = new URL(envValue(objects, gatewayContainer, 'WRITE_API_INTERNAL_URL') ?? '');
    expect(internalUrl.hostname).toBe('write-api');
    expect(Number(internalUrl.port)).toBe(internalServicePort?.port);
    const publicUrl = new URL(envValue(objects, gatewayContainer, 'WRITE_API_URL') ?? '');
    const publicPort = servicePorts.find((port) => port.port === Number(publicUrl.port || 80));
    expect(publicPort?.targetPort).toBe('http');
  });

  it('runs a 3-node NATS StatefulSet whose routes name all 3 peers through the headless Service', () => {
    const nats = findObject(objects, 'StatefulSet', 'nats');
    expect(nats.spec.replicas).toBe(3);
    const headless = findObject(objects, 'Service', nats.spec.serviceName);
    expect(headless.spec.clusterIP).toBe('None');
    expect(findObject(objects, 'Service', 'nats').spec.ports[0].port).toBe(4222);
    const [container] = containersOf(nats);
    expect(container.image).toMatch(/^nats:2\.10[\w.-]*-alpine$/);
    const configMapName = podSpecOf(nats).volumes.find((volume: Container) => volume.configMap).configMap
      .name;
    const config = findObject(objects, 'ConfigMap', configMapName).data?.['nats.conf'] ?? '';
    const routes = [...config.matchAll(/nats:\/\/([\w.-]+):6222/g)].map((match) => match[1]);
    expect(routes.sort()).toEqual(
      [0, 1, 2].map((ordinal) => `${nats.metadata.name}-${ordinal}.${nats.spec.serviceName}`),
    );
  });

  it('lets only the Ingress controller reach the public ports, only the gateways the internal one, only the services NATS and only NATS its routes', () => {
    const namespace = overlay === 'dev' ? 'wizard-stream-dev' : 'wizard-stream';
    const inNamespace = (podLabels: Record<string, string>, name = namespace): PolicyPeer => ({
      namespace: name,
      namespaceLabels: { 'kubernetes.io/metadata.name': name },
      podLabels,
    });
    const podOf = (workload: K8sObject): PolicyTarget => ({
      ...inNamespace(workload.spec.template.metadata.labels),
      ports: containersOf(workload).flatMap((container) => container.ports ?? []),
    });
    const nats = podOf(findObject(objects, 'StatefulSet', 'nats'));
    const api = podOf(writeApi);
    const gw = podOf(gateway);
    const migrate = podOf(findObject(objects, 'Job', 'write-api-migrate'));
    const peers = {
      ingress: inNamespace({ 'app.kubernetes.io/name': 'ingress-nginx' }, 'ingress-nginx'),
      prometheus: inNamespace({ 'app.kubernetes.io/name': 'prometheus' }, 'monitoring'),
      writeApi: api,
      gateway: gw,
      nats,
      migrate,
      // Any other pod: one of the same namespace, and a pod of another namespace with the services' labels.
      stranger: inNamespace({ 'app.kubernetes.io/name': 'debug-shell' }),
      impostor: inNamespace({ 'app.kubernetes.io/name': 'stream-gateway' }, 'default'),
    };
    const allowedFrom = (to: PolicyTarget, port: string) =>
      Object.entries(peers)
        .filter(([, from]) => admits(objects, from, to, port))
        .map(([name]) => name)
        .sort();

    expect(allowedFrom(api, 'http')).toEqual(['gateway', 'ingress', 'prometheus']);
    expect(allowedFrom(api, 'internal')).toEqual(['gateway']);
    expect(allowedFrom(gw, 'http')).toEqual(['ingress', 'prometheus']);
    expect(allowedFrom(nats, 'client')).toEqual(['gateway', 'writeApi']);
    expect(allowedFrom(nats, 'cluster')).toEqual(['nats']);
    expect(allowedFrom(nats, 'monitor')).toEqual([]);
    // The default deny: a pod no other policy names accepts nothing.
    expect(allowedFrom({ ...peers.stranger, ports: [{ name: 'http', containerPort: 80 }] }, 'http')).toEqual(
      [],
    );
    expect(allowedFrom({ ...migrate, ports: [{ name: 'any', containerPort: 8000 }] }, 'any')).toEqual([]);
  });

  it("exposes write-api's internal read path as its own Service port that no Ingress routes to", () => {
    const [container] = containersOf(writeApi);
    expect(container.ports).toContainEqual({ name: 'internal', containerPort: 8002, protocol: 'TCP' });
    const service = findObject(objects, 'Service', 'write-api');
    expect(service.spec.ports).toContainEqual({
      name: 'internal',
      port: 8002,
      targetPort: 'internal',
      protocol: 'TCP',
    });
    const backends = objects
      .filter((object) => object.kind === 'Ingress')
      .flatMap((ingress) => ingress.spec.rules.flatMap((rule: Container) => rule.http.paths))
      .map((path: Container) => path.backend.service.port);
    expect(backends.length).toBeGreaterThan(0);
    for (const port of backends) expect([port.name, port.number]).not.toContain('internal');
    for (const port of backends) expect(port.number).not.toBe(8002);
  });

  it('runs NATS with TLS (verified client certificates) on clients and routes, and no anonymous user', () => {
    const nats = findObject(objects, 'StatefulSet', 'nats');
    const config = findObject(objects, 'ConfigMap', 'nats-config').data?.['nats.conf'] ?? '';
    const tlsBlocks = [...config.matchAll(/tls \{([^}]*)\}/g)].map((match) => match[1] ?? '');
    expect(tlsBlocks).toHaveLength(2);
    const clusterBlock = config.slice(config.indexOf('cluster {'));
    expect(clusterBlock).toContain(`tls {${tlsBlocks[1]}}`);
    const [natsContainer] = containersOf(nats);
    const mount = natsContainer.volumeMounts.find((m: Container) => m.mountPath === '/etc/nats-tls');
    const volume = podSpecOf(nats).volumes.find((v: Container) => v.name === mount?.name);
    expect(volume?.secret?.secretName).toBe('nats-tls');
    for (const block of tlsBlocks) {
      expect(block).toMatch(/verify: true/);
      for (const [key, file] of [
        ['cert_file', 'tls.crt'],
        ['key_file', 'tls.key'],
        ['ca_file', 'ca.crt'],
      ]) {
        expect(block).toContain(`${key}: "/etc/nats-tls/${file}"`);
      }
    }
    expect(config).toMatch(/authorization \{\s*users = \[/);
    expect(config).not.toMatch(/no_auth_user/);
  });

  it("gives write-api and the gateways each their own NATS login, certificate and npm start's permissions", () => {
    const nats = findObject(objects, 'StatefulSet', 'nats');
    const config = findObject(objects, 'ConfigMap', 'nats-config').data?.['nats.conf'] ?? '';
    const users = [...config.matchAll(/user: "([\w-]+)"\s+password: \$(\w+)\s+permissions: (\{.*\})\n/g)].map(
      ([, user, passwordVariable, permissions]) => ({
        user,
        passwordVariable,
        // nats.conf's unquoted keys, quoted: the line is then JSON.
        permissions: JSON.parse(String(permissions).replace(/(\w+):/g, '"$1":')),
      }),
    );
    expect(users.map((entry) => entry.user).sort()).toEqual(['stream-gateway', 'write-api']);
    const [natsContainer] = containersOf(nats);
    for (const [deployment, expected] of [
      [writeApi, NATS_USERS.writeApi],
      [gateway, NATS_USERS.gateway],
    ] as const) {
      const entry = users.find((candidate) => candidate.user === expected.user);
      expect(entry?.permissions, expected.user).toEqual(expected.permissions);
      const [container] = containersOf(deployment);
      const env = (name: string) => container.env.find((e: { name: string }) => e.name === name);
      expect(env('NATS_USER')?.value).toBe(expected.user);
      // The service's password and the one the server checks are the same Secret key.
      const served = natsContainer.env.find((e: { name: string }) => e.name === entry?.passwordVariable);
      expect(served?.valueFrom?.secretKeyRef).toBeDefined();
      expect(env('NATS_PASSWORD')?.valueFrom?.secretKeyRef).toEqual(served.valueFrom.secretKeyRef);
      // Its own client certificate, mounted where NATS_TLS_* point.
      const files = ['NATS_TLS_CA_FILE', 'NATS_TLS_CERT_FILE', 'NATS_TLS_KEY_FILE'].map((name) =>
        envValue(objects, container, name),
      );
      expect(files).toEqual(['/etc/nats-tls/ca.crt', '/etc/nats-tls/tls.crt', '/etc/nats-tls/tls.key']);
      const mount = container.volumeMounts.find((m: Container) => m.mountPath === '/etc/nats-tls');
      const volume = podSpecOf(deployment).volumes.find((v: Container) => v.name === mount?.name);
      expect(volume?.secret?.secretName).toBe(`${deployment.metadata.name}-nats-tls`);
    }
    expect(envValue(objects, containersOf(writeApi)[0], 'NATS_PASSWORD')).toBeUndefined();
    // The migrations Job needs no NATS login.
    const [migrate] = containersOf(findObject(objects, 'Job', 'write-api-migrate'));
    expect((migrate.env ?? []).map((e: { name: string }) => e.name)).not.toContain('NATS_PASSWORD');
  });

  it('runs every container as a non-root user without privilege escalation', () => {
    for (const workload of workloads(objects)) {
      const podSecurity = podSpecOf(workload).securityContext ?? {};
      for (const container of containersOf(workload)) {
        const security = { ...podSecurity, ...container.securityContext };
        expect(security.runAsNonRoot, `${workload.metadata.name}/${container.name}`).toBe(true);
        expect(security.runAsUser, `${workload.metadata.name}/${container.name}`).toBeGreaterThan(0);
        expect(container.securityContext?.allowPrivilegeEscalation).toBe(false);
      }
    }
  });

  it('pins every image to an explicit tag and runs the migrations Job with --migrate-only', () => {
    for (const container of workloads(objects).flatMap((workload) => containersOf(workload))) {
      expect(container.image, container.name).toMatch(/:[\w.-]+$/);
      expect(container.image, container.name).not.toMatch(/:latest$/);
    }
    const job = findObject(objects, 'Job', 'write-api-migrate');
    const [migrate] = containersOf(job);
    expect(migrate.command).toEqual(['node', 'main.js', '--migrate-only']);
    expect(migrate.image).toBe(containersOf(writeApi)[0].image);
  });

  it('sets image tags only through `images:` entries that match an image the base renders', async () => {
    const [kustomization] = parseYamlDocuments(
      await readFile(join(REPO_ROOT, 'deploy', 'k8s', 'overlays', overlay, 'kustomization.yaml'), 'utf8'),
      `${overlay}/kustomization.yaml`,
    ) as [{ images?: { name: string; newName?: string; newTag?: string }[] }];
    const untagged = (image: string) => image.replace(/:[^/:]+$/, '');
    const baseImages = workloads(await renderKustomization('deploy/k8s/base'))
      .flatMap((workload) => containersOf(workload))
      .map((container) => untagged(container.image));
    const rendered = workloads(objects)
      .flatMap((workload) => containersOf(workload))
      .map((container) => container.image);
    expect(kustomization.images?.length).toBeGreaterThan(0);
    for (const entry of kustomization.images ?? []) {
      // kustomize matches `name` against the base's output: an entry naming anything else changes nothing.
      expect(baseImages, `images: ${entry.name}`).toContain(entry.name);
      expect(rendered).toContain(`${entry.newName ?? entry.name}:${entry.newTag}`);
    }
  });

  it('reads DATABASE_URL from the external Secret and resolves every other reference in the render', () => {
    const external = EXTERNAL_SECRETS[overlay] ?? [];
    for (const workload of [writeApi, findObject(objects, 'Job', 'write-api-migrate')]) {
      const [container] = containersOf(workload);
      const databaseUrl = container.env.find((entry: { name: string }) => entry.name === 'DATABASE_URL');
      expect(databaseUrl.valueFrom.secretKeyRef).toEqual({ name: 'wizard-stream-database', key: 'url' });
    }
    for (const workload of workloads(objects)) {
      for (const container of containersOf(workload)) {
        for (const entry of container.env ?? []) {
          const secret = entry.valueFrom?.secretKeyRef;
          if (!secret || external.includes(secret.name)) continue;
          const object = findObject(objects, 'Secret', secret.name);
          expect({ ...object.data, ...object.stringData }).toHaveProperty(secret.key);
        }
        for (const source of container.envFrom ?? []) {
          if (source.configMapRef) findObject(objects, 'ConfigMap', source.configMapRef.name);
        }
      }
      for (const volume of podSpecOf(workload).volumes ?? []) {
        if (volume.secret && !external.includes(volume.secret.secretName)) {
          findObject(objects, 'Secret', volume.secret.secretName);
        }
      }
    }
  });
});

describe('the NATS configuration', () => {
  it('is accepted by nats-server for each pod name, with the Secrets it reads', async () => {
    const objects = await renderKustomization('deploy/k8s/overlays/production');
    const certs = await createNatsCerts('wizard-stream');
    const dir = await mkdtemp(join(tmpdir(), 'nats-conf-'));
    try {
      // The files of Secret nats-tls where the pods mount them, and the passwords of Secret wizard-stream-nats.
      const mounted = join(dir, 'nats-tls');
      await mkdir(mounted);
      await copyFile(certs.server.caFile, join(mounted, 'ca.crt'));
      await copyFile(certs.server.certFile, join(mounted, 'tls.crt'));
      await copyFile(certs.server.keyFile, join(mounted, 'tls.key'));
      const config = (findObject(objects, 'ConfigMap', 'nats-config').data?.['nats.conf'] ?? '').replaceAll(
        '/etc/nats-tls/',
        `${mounted}/`,
      );
      const file = join(dir, 'nats.conf');
      await writeFile(file, config);
      expect(NATS_SERVER_BINARY).toBeDefined();
      for (const pod of ['nats-0', 'nats-1', 'nats-2']) {
        const { stdout, stderr } = await run(NATS_SERVER_BINARY ?? 'nats-server', ['-t', '-c', file], {
          env: {
            ...process.env,
            SERVER_NAME: pod,
            WRITE_API_NATS_PASSWORD: 'p-write-api-password',
            STREAM_GATEWAY_NATS_PASSWORD: 'p-stream-gateway-password',
          },
        });
        expect(`${stdout}${stderr}`).toContain('is valid');
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
      await certs.dispose();
    }
  }, 30_000);
});

describe('the Dockerfiles', () => {
  it.each(['write-api', 'stream-gateway'])(
    '%s: multi-stage, pinned bases, non-root runtime, preload CMD',
    async (service) => {
      const text = await readFile(join(REPO_ROOT, 'deploy', 'docker', `${service}.Dockerfile`), 'utf8');
      const stages = parseDockerfile(text);
      expect(stages.length).toBeGreaterThanOrEqual(2);
      for (const stage of stages) {
        expect(stage.from, 'base image tag').toMatch(/:[\w.-]+$/);
        expect(stage.from).not.toMatch(/:latest$/);
      }
      // Both stages on the published Node base by default (the NODE_IMAGE build arg swaps it only where
      // no registry is reachable, as in deploy-run.test.ts).
      expect(new Set(stages.map((stage) => stage.from))).toEqual(new Set(['node:20.20.2-bookworm-slim']));
      const build = stages[0];
      const runtime = stages.at(-1);
      const runs = (stage: typeof build) =>
        (stage?.instructions ?? []).filter((i) => i.keyword === 'RUN').map((i) => i.args);
      expect(runs(build).some((args) => args.includes('npm ci'))).toBe(true);
      expect(runs(build).some((args) => args.includes(`build-bundles.mjs ${service}`))).toBe(true);
      // The runtime stage copies the bundle from the build stage and installs nothing.
      expect(runs(runtime).some((args) => /npm (ci|install)/.test(args))).toBe(false);
      const copies = (runtime?.instructions ?? []).filter((i) => i.keyword === 'COPY');
      expect(copies.length).toBeGreaterThan(0);
      expect(copies.every((copy) => copy.args.includes(`--from=${build?.name}`))).toBe(true);
      const users = (runtime?.instructions ?? []).filter((i) => i.keyword === 'USER');
      expect(users.length).toBeGreaterThan(0);
      const user = users.at(-1)?.args.split(':')[0] ?? '';
      expect(['root', '0', '']).not.toContain(user);
      expect(user).toBe('10001');
      const cmd = (runtime?.instructions ?? []).filter((i) => i.keyword === 'CMD').at(-1);
      expect(JSON.parse(cmd?.args ?? 'null')).toEqual(['node', '--import', './otel.js', 'main.js']);
    },
  );

  it('leaves node_modules and local data out of the build context', async () => {
    const ignore = (await readFile(join(REPO_ROOT, '.dockerignore'), 'utf8'))
      .split('\n')
      .map((line) => line.trim());
    expect(ignore).toEqual(expect.arrayContaining(['**/node_modules', '**/.data', '.git']));
  });
});

describe('the Prometheus alert rules', () => {
  it('give every alert an expression, a duration, a severity and a summary, on metrics that exist', async () => {
    const [rules] = parseYamlDocuments(
      await readFile(join(REPO_ROOT, 'deploy', 'prometheus', 'alerts.yaml'), 'utf8'),
      'alerts.yaml',
    ) as [{ groups: { name: string; rules: Record<string, Container>[] }[] }];
    const alerts = rules.groups.flatMap((group) => group.rules);
    expect(alerts.length).toBeGreaterThanOrEqual(8);
    const serviceMetrics = [
      await readFile(join(REPO_ROOT, 'services', 'write-api', 'src', 'metrics.ts'), 'utf8'),
      await readFile(join(REPO_ROOT, 'services', 'stream-gateway', 'src', 'metrics.ts'), 'utf8'),
      // Registered by both services.
      await readFile(join(REPO_ROOT, 'packages', 'bus', 'src', 'metrics.ts'), 'utf8'),
    ].join('\n');
    for (const alert of alerts) {
      expect(alert.alert).toMatch(/^Wizard[A-Za-z0-9]+$/);
      expect(typeof alert.expr).toBe('string');
      expect(alert.for).toMatch(/^\d+[smh]$/);
      expect(['page', 'warning']).toContain(alert.labels?.severity);
      expect(alert.annotations?.summary).toBeTruthy();
      // Our own metric names must be the ones the services register (histograms add _bucket/_sum/_count).
      for (const [name] of String(alert.expr).matchAll(/\bwizard_[a-z0-9_]+/g)) {
        const registered = name.replace(/_(bucket|sum|count)$/, '');
        expect(serviceMetrics, `${alert.alert} uses ${name}`).toContain(`'${registered}'`);
      }
    }
    const names = alerts.map((alert) => alert.alert);
    expect(names).toEqual(
      expect.arrayContaining([
        'WizardDeliveryLagHigh',
        'WizardRelayBacklogAging',
        'WizardRelayDeadLetters',
        'WizardSlowClientClosesHigh',
        'WizardWriteApiNatsDisconnected',
        'WizardNatsRefusals',
      ]),
    );
  });
});

describe("the container bundles (the Dockerfiles' build step and CMD, run without Docker)", () => {
  let workDir: string;
  let nats: NatsServer;
  let database: TestDatabase;
  const started: BundleProcess[] = [];

  beforeAll(async () => {
    workDir = await mkdtemp(join(tmpdir(), 'wizard-bundles-'));
    [nats, database] = await Promise.all([
      NatsServer.start(),
      createTestDatabase('postgres'),
      buildBundle('write-api', join(workDir, 'write-api')),
      buildBundle('stream-gateway', join(workDir, 'stream-gateway')),
    ]).then(([natsServer, testDatabase]) => [natsServer, testDatabase] as const);
  }, 90_000);

  afterAll(async () => {
    await Promise.all(started.map((process) => stopBundle(process)));
    await nats?.stop();
    await database?.dispose();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  function start(service: string, args: string[], env: Record<string, string>): BundleProcess {
    const process = runBundle(join(workDir, service), args, env);
    started.push(process);
    return process;
  }

  async function untilReady(url: string, process: BundleProcess): Promise<void> {
    await until(
      async () => {
        if (process.child.exitCode !== null) throw new Error(`exited early:\n${process.output()}`);
        return fetch(`${url}/readyz`).then(
          (response) => response.status === 200,
          () => false,
        );
      },
      { timeoutMs: 20_000, what: `${url}/readyz answering 200` },
    );
  }

  it.each(['postgres', 'pglite'] as const)(
    'write-api main.js --migrate-only migrates a %s database and exits 0',
    async (dialect) => {
      const env: Record<string, string> =
        dialect === 'postgres'
          ? { DATABASE_URL: database.url ?? '' }
          : { PGLITE_DIR: join(workDir, 'pglite-data') }; // PGlite is the package copied next to the bundle
      const migrate = start('write-api', ['main.js', '--migrate-only'], env);
      expect(await migrate.exited, migrate.output()).toBe(0);
      const logLine = migrate
        .output()
        .split('\n')
        .find((line) => line.includes('migrations applied'));
      const applied = JSON.parse(logLine ?? '{}').applied as string[];
      // The test database is already migrated; a fresh PGlite directory gets every migration.
      if (dialect === 'postgres') expect(applied).toEqual([]);
      else expect(applied.length).toBeGreaterThan(0);
    },
    60_000,
  );

  it('write-api and stream-gateway start with the OpenTelemetry preload, turn ready, and exit 0 on SIGTERM', async () => {
    const [writeApiPort, gatewayPort] = [await freePort(), await freePort()];
    const internalToken = 'bundle-test-internal-token';
    const writeApi = start('write-api', ['--import', './otel.js', 'main.js'], {
      DATABASE_URL: database.url ?? '',
      NATS_URL: nats.url,
      PORT: String(writeApiPort),
      INTERNAL_API_TOKEN: internalToken,
      MIGRATE_ON_START: 'false',
    });
    const gateway = start('stream-gateway', ['--import', './otel.js', 'main.js'], {
      NATS_URL: nats.url,
      PORT: String(gatewayPort),
      WRITE_API_URL: `http://127.0.0.1:${writeApiPort}`,
      INTERNAL_API_TOKEN: internalToken,
      DRAIN_MS: '200',
    });
    await untilReady(`http://127.0.0.1:${writeApiPort}`, writeApi);
    await untilReady(`http://127.0.0.1:${gatewayPort}`, gateway);

    // The gateway reaches write-api through WRITE_API_URL: a stream with a bad key gets write-api's 401.
    const stream = await fetch(
      `http://127.0.0.1:${gatewayPort}/api/projects/1/wizard/sessions/stream/?workflow_id=w`,
      // Well-formed, so the gateway forwards it (a malformed one it refuses itself).
      { headers: { accept: 'text/event-stream', authorization: `Bearer wsk_${'A'.repeat(43)}` } },
    );
    expect(stream.status).toBe(401);
    await stream.arrayBuffer();
    // The offline docs page's assets are copied next to the bundle (scripts/build-bundles.mjs).
    const docsAsset = await fetch(
      `http://127.0.0.1:${writeApiPort}/api/schema/docs/static/swagger-ui-bundle.js`,
    );
    expect(docsAsset.status).toBe(200);
    expect((await docsAsset.arrayBuffer()).byteLength).toBeGreaterThan(100_000);

    writeApi.child.kill('SIGTERM');
    gateway.child.kill('SIGTERM');
    expect(await writeApi.exited, writeApi.output()).toBe(0);
    expect(await gateway.exited, gateway.output()).toBe(0);
  }, 60_000);
});
