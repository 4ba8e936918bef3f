import { stringify } from 'yaml';
import type { K8sObject } from '../../support/manifests.js';

/**
 * Turns rendered Kubernetes objects into what `podman kube play` (4.3) can run on one machine, as data
 * (never by editing YAML text). kube play runs Pods, ConfigMaps and Secrets; everything else gets a
 * stand-in here or is listed in `notRun` with the reason:
 * - StatefulSet → pods `<name>-0…n-1`; Deployment → `replicas` pods (or the override, as `kubectl scale`
 *   would); Job → one pod that runs once.
 * - Service → a name in every pod's hostAliases. A Service that keeps port numbers (nats: 4222 → 4222)
 *   names one of its pods per client, in turn, as kube-proxy would spread connections; one that maps
 *   ports (write-api: 80 → 8000) names a small TCP proxy pod (deploy/podman/service-proxy.mjs). A headless
 *   Service gives each StatefulSet pod its DNS name `<pod>.<service>`.
 * - Probes are dropped (kube play turns them into systemd healthchecks, which cannot run here); each
 *   container's readiness probe is returned so the caller polls it.
 * - Container ports are dropped: kube play would publish every one on the host (NATS' 4222 is taken).
 * - Names of pods, ConfigMaps, Secrets and emptyDir volumes get the run's prefix: podman's are global,
 *   and an emptyDir must not be shared between replicas.
 * - A Secret is read either from the environment or as a volume, never both: podman 4.3 reads the one as
 *   a flat JSON map of base64 values and the other as a Secret object (see `secretPayload`).
 */

// biome-ignore lint/suspicious/noExplicitAny: manifests are plain rendered data, read field by field
type Spec = any;

export interface KubePlayOptions {
  /** Starts every podman name this run creates, so concurrent runs never share one. */
  prefix: string;
  /** Free addresses on the pods' network, handed out in order. */
  addresses: string[];
  /** Rendered image → the local image to run instead (nothing can be pulled). An unmapped image throws. */
  images: Record<string, string>;
  /** Deployment name → replicas. */
  replicas?: Record<string, number>;
  /** Secrets the manifests expect to be created out of band; the caller creates them. */
  externalSecrets: string[];
  serviceProxy: { image: string; script: string };
}

export interface ReadinessCheck {
  path: string;
  port: number;
}

export interface PlannedContainer {
  name: string;
  /** podman's container name: `<pod>-<container>`. */
  podmanName: string;
  /** The container as rendered, before the changes for kube play: what runtime checks compare against. */
  manifest: Spec;
  /** The pod's securityContext overlaid by the container's: what the container must run with. */
  security: Spec;
  readiness: ReadinessCheck | undefined;
}

export interface PlannedPod {
  /** What it stands for: `StatefulSet/nats`, `Deployment/write-api`, `Job/…`, or `Service/…` for a proxy. */
  owner: string;
  /** The pod's name as Kubernetes would give it (`nats-0`, `write-api-1`); `name` ends with it. */
  shortName: string;
  name: string;
  ip: string;
  runsOnce: boolean;
  containers: PlannedContainer[];
  /** The Pod and the ConfigMaps it reads: `podman kube play` input. */
  yaml: string;
}

export interface PlannedSecret {
  /** The name in the manifests. */
  source: string;
  /** podman's secret name. */
  name: string;
  /** Base64 values; undefined for an external one (the caller has them). */
  data: Record<string, string> | undefined;
  /** How the pods read it: from the environment (secretKeyRef, secretRef) or as a volume. */
  readAs: 'env' | 'volume' | undefined;
}

/**
 * What `podman secret create` must be given for a planned Secret, from its base64 values. podman 4.3
 * reads an environment Secret as a flat JSON map of base64 values, and a volume Secret as a Secret object
 * whose `data` it writes to the files as they are, undecoded (and it ignores `stringData`): so the
 * object carries the decoded values under `data`.
 */
export function secretPayload(secret: PlannedSecret, base64: Record<string, string>): string {
  if (secret.readAs !== 'volume') return JSON.stringify(base64);
  const data = Object.fromEntries(
    Object.entries(base64).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
  );
  return JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: secret.name }, data });
}

export interface KubePlayPlan {
  pods: PlannedPod[];
  secrets: PlannedSecret[];
  notRun: { object: string; why: string }[];
}

const NOT_RUN: Record<string, string> = {
  Namespace: 'podman has no namespaces; every name of this run carries its prefix instead',
  Ingress: 'no ingress controller: tests reach the pods directly (routing is checked in deploy-manifests)',
  HorizontalPodAutoscaler: 'no metrics server or controller: replicas are fixed',
  PodDisruptionBudget: 'no evictions happen on a single machine',
  NetworkPolicy: "podman's bridge network enforces none",
};
const WORKLOADS = new Set(['StatefulSet', 'Deployment', 'Job']);
const RUN = new Set(['ConfigMap', 'Secret', 'Service', ...WORKLOADS]);

interface PodInstance {
  owner: K8sObject;
  /** `Deployment/write-api` */
  ownerId: string;
  shortName: string;
  name: string;
  ip: string;
  template: Spec;
}

interface HostAlias {
  ip: string;
  hostnames: string[];
}

/** How Services resolve inside the pods, and the proxy pods some of them need. */
interface ServiceStandIns {
  fixed: HostAlias[];
  /** Names that point each client pod at one backend pod, in turn. */
  spread: { hostnames: string[]; backends: PodInstance[] }[];
  proxies: { service: string; ip: string; routes: { port: number; backends: string[] }[] }[];
}

/** Renames and checks the references of pods: Secrets, ConfigMaps, images. */
interface References {
  named(name: string): string;
  /** Also records how the Secret is read; one read both ways throws. */
  secret(source: string, user: string, readAs: 'env' | 'volume'): string;
  /** Also records the ConfigMap in `used`, so it travels with the pod's kube play input. */
  configMap(source: string, user: string, used: Set<string>): string;
  /** The keys of a rendered ConfigMap. */
  configMapKeys(source: string): string[];
  image(rendered: string, user: string): string;
  /** The Pod and the ConfigMaps it uses, renamed, as multi-document YAML. */
  playYaml(pod: Spec, used: Set<string>): string;
}

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> = {}) =>
  selector !== undefined &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/** A probe's or Service's port (a number or a container port's name) as a number. */
function resolvePort(port: number | string, containers: Spec[], what: string): number {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  for (const container of containers) {
    const found = (container.ports ?? []).find((candidate: Spec) => candidate.name === port);
    if (found) return Number(found.containerPort);
  }
  throw new Error(`${what}: no container port named ${port}`);
}

function base64Values(secret: K8sObject): Record<string, string> {
  const values: Record<string, string> = { ...(secret.data ?? {}) };
  for (const [key, value] of Object.entries(secret.stringData ?? {})) {
    values[key] = Buffer.from(value).toString('base64');
  }
  return values;
}

function workloadInstances(
  objects: K8sObject[],
  options: KubePlayOptions,
  nextAddress: (what: string) => string,
): PodInstance[] {
  const instances: PodInstance[] = [];
  for (const owner of objects.filter((object) => WORKLOADS.has(object.kind))) {
    const name = owner.metadata.name;
    const count =
      owner.kind === 'Job'
        ? 1
        : (options.replicas?.[name] ?? (owner.spec.replicas as number | undefined) ?? 1);
    for (let ordinal = 0; ordinal < count; ordinal++) {
      const shortName = owner.kind === 'Job' ? name : `${name}-${ordinal}`;
      instances.push({
        owner,
        ownerId: `${owner.kind}/${name}`,
        shortName,
        name: `${options.prefix}-${shortName}`,
        ip: nextAddress(shortName),
        template: owner.spec.template,
      });
    }
  }
  return instances;
}

function serviceStandIns(
  objects: K8sObject[],
  instances: PodInstance[],
  nextAddress: (what: string) => string,
  notRun: KubePlayPlan['notRun'],
): ServiceStandIns {
  const namespace = objects.find((object) => object.metadata.namespace)?.metadata.namespace;
  const dnsNames = (name: string) =>
    namespace
      ? [name, `${name}.${namespace}`, `${name}.${namespace}.svc`, `${name}.${namespace}.svc.cluster.local`]
      : [name];
  const standIns: ServiceStandIns = { fixed: [], spread: [], proxies: [] };
  for (const service of objects.filter((object) => object.kind === 'Service')) {
    const serviceName = service.metadata.name;
    if (service.spec.clusterIP === 'None') {
      for (const instance of instances) {
        if (instance.owner.kind === 'StatefulSet' && instance.owner.spec.serviceName === serviceName) {
          standIns.fixed.push({
            ip: instance.ip,
            hostnames: dnsNames(`${instance.shortName}.${serviceName}`),
          });
        }
      }
      notRun.push({ object: `Service/${serviceName}`, why: "headless: each pod's DNS name is a hostAlias" });
      continue;
    }
    const backends = instances.filter(
      (instance) =>
        instance.owner.kind !== 'Job' && selects(service.spec.selector, instance.template.metadata?.labels),
    );
    if (backends.length === 0) throw new Error(`Service/${serviceName} selects no pod`);
    const routes = (service.spec.ports as Spec[]).map((port) => ({
      port: Number(port.port),
      target: resolvePort(
        port.targetPort ?? port.port,
        (backends[0] as PodInstance).template.spec.containers,
        `Service/${serviceName} port ${port.name ?? port.port}`,
      ),
    }));
    if (routes.every((route) => route.port === route.target)) {
      standIns.spread.push({ hostnames: dnsNames(serviceName), backends });
      continue;
    }
    const ip = nextAddress(`Service/${serviceName}`);
    standIns.fixed.push({ ip, hostnames: dnsNames(serviceName) });
    standIns.proxies.push({
      service: serviceName,
      ip,
      routes: routes.map((route) => ({
        port: route.port,
        backends: backends.map((backend) => `${backend.ip}:${route.target}`),
      })),
    });
  }
  return standIns;
}

/** One container for kube play, and what the caller needs to know about it. */
function convertContainer(
  container: Spec,
  context: {
    instance: PodInstance;
    spec: Spec;
    refs: References;
    used: Set<string>;
    volumeName: (n: string) => string;
  },
): { converted: Spec; planned: PlannedContainer } {
  const { instance, spec, refs, used, volumeName } = context;
  const user = instance.ownerId;
  // Ports would be published on the host; probes would become systemd healthchecks.
  const { ports, startupProbe, livenessProbe, readinessProbe, ...kept } = container;
  const probe = readinessProbe?.httpGet;
  const planned: PlannedContainer = {
    name: container.name,
    podmanName: `${instance.name}-${container.name}`,
    manifest: container,
    security: { ...spec.securityContext, ...container.securityContext },
    readiness: probe
      ? { path: probe.path, port: resolvePort(probe.port, [container], `${user} readiness probe`) }
      : undefined,
  };
  const env = (container.env ?? []).map((entry: Spec) => {
    const secretRef = entry.valueFrom?.secretKeyRef;
    const configMapRef = entry.valueFrom?.configMapKeyRef;
    if (secretRef) {
      return {
        ...entry,
        valueFrom: { secretKeyRef: { ...secretRef, name: refs.secret(secretRef.name, user, 'env') } },
      };
    }
    if (configMapRef) {
      const name = refs.configMap(configMapRef.name, user, used);
      return { ...entry, valueFrom: { configMapKeyRef: { ...configMapRef, name } } };
    }
    return entry;
  });
  // An `env` entry overrides the same name from `envFrom`; podman 4.3 lets a blank one lose to the
  // ConfigMap. Such a ConfigMap is read key by key instead, without the names `env` sets.
  const named = new Set((container.env ?? []).map((entry: Spec) => entry.name as string));
  const overridden = (source: Spec) =>
    source.configMapRef !== undefined &&
    source.prefix === undefined &&
    refs.configMapKeys(source.configMapRef.name).some((key) => named.has(key));
  for (const source of (container.envFrom ?? []).filter(overridden)) {
    const name = refs.configMap(source.configMapRef.name, user, used);
    for (const key of refs.configMapKeys(source.configMapRef.name)) {
      if (!named.has(key)) env.unshift({ name: key, valueFrom: { configMapKeyRef: { name, key } } });
    }
  }
  const envFrom = (container.envFrom ?? [])
    .filter((source: Spec) => !overridden(source))
    .map((source: Spec) => {
      if (source.configMapRef) {
        const name = refs.configMap(source.configMapRef.name, user, used);
        return { ...source, configMapRef: { ...source.configMapRef, name } };
      }
      if (source.secretRef) {
        return {
          ...source,
          secretRef: { ...source.secretRef, name: refs.secret(source.secretRef.name, user, 'env') },
        };
      }
      return source;
    });
  const volumeMounts = (container.volumeMounts ?? []).map((mount: Spec) => ({
    ...mount,
    name: volumeName(mount.name),
  }));
  return {
    converted: { ...kept, image: refs.image(container.image, user), env, envFrom, volumeMounts },
    planned,
  };
}

function workloadPod(instance: PodInstance, hostAliases: HostAlias[], refs: References): PlannedPod {
  const user = instance.ownerId;
  const used = new Set<string>();
  // Scheduling constraints mean nothing on one machine.
  const { affinity, topologySpreadConstraints, ...spec }: Spec = instance.template.spec;
  // An emptyDir is the pod's own: named after the pod, since podman's volume names are global.
  const emptyDirs = new Set(
    (spec.volumes ?? []).filter((volume: Spec) => volume.emptyDir).map((volume: Spec) => volume.name),
  );
  const volumeName = (name: string) => (emptyDirs.has(name) ? `${instance.name}-${name}` : name);
  const volumes = (spec.volumes ?? []).map((volume: Spec) => {
    if (volume.emptyDir) return { ...volume, name: volumeName(volume.name) };
    if (volume.configMap) {
      const name = refs.configMap(volume.configMap.name, user, used);
      return { ...volume, configMap: { ...volume.configMap, name } };
    }
    if (volume.secret) {
      const secretName = refs.secret(volume.secret.secretName, user, 'volume');
      // podman 4.3.1 dereferences `optional` without checking it is set (a nil-pointer panic).
      return {
        ...volume,
        secret: { ...volume.secret, secretName, optional: volume.secret.optional ?? false },
      };
    }
    throw new Error(`${user}: volume ${volume.name} is neither an emptyDir, a ConfigMap nor a Secret`);
  });
  const context = { instance, spec, refs, used, volumeName };
  const initContainers = (spec.initContainers ?? []).map((container: Spec) =>
    convertContainer(container, context),
  );
  const containers = spec.containers.map((container: Spec) => convertContainer(container, context));
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: instance.name, labels: instance.template.metadata?.labels ?? {} },
    spec: {
      ...spec,
      hostAliases,
      ...(initContainers.length > 0 ? { initContainers: initContainers.map((c: Spec) => c.converted) } : {}),
      containers: containers.map((container: Spec) => container.converted),
      volumes,
    },
  };
  return {
    owner: user,
    shortName: instance.shortName,
    name: instance.name,
    ip: instance.ip,
    runsOnce: (spec.restartPolicy ?? 'Always') === 'Never',
    containers: [...initContainers, ...containers].map((container: Spec) => container.planned),
    yaml: refs.playYaml(pod, used),
  };
}

const PROXY_CONFIG_MAP = 'service-proxy';

function proxyPod(proxy: ServiceStandIns['proxies'][number], image: string, refs: References): PlannedPod {
  const shortName = `${proxy.service}-service`;
  const name = refs.named(shortName);
  const container = {
    name: 'proxy',
    image,
    command: ['node', '/etc/service-proxy/service-proxy.mjs', JSON.stringify(proxy.routes)],
    resources: { limits: { cpu: '250m', memory: '64Mi' } },
    // Root only to bind the Service's port 80; nothing else.
    securityContext: {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
    },
    volumeMounts: [{ name: 'script', mountPath: '/etc/service-proxy', readOnly: true }],
  };
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, labels: { 'app.kubernetes.io/name': shortName } },
    spec: {
      containers: [container],
      volumes: [{ name: 'script', configMap: { name: refs.named(PROXY_CONFIG_MAP) } }],
    },
  };
  return {
    owner: `Service/${proxy.service}`,
    shortName,
    name,
    ip: proxy.ip,
    runsOnce: false,
    containers: [
      {
        name: 'proxy',
        podmanName: `${name}-proxy`,
        manifest: container,
        security: container.securityContext,
        readiness: undefined,
      },
    ],
    yaml: refs.playYaml(pod, new Set([PROXY_CONFIG_MAP])),
  };
}

export function planKubePlay(objects: K8sObject[], options: KubePlayOptions): KubePlayPlan {
  const notRun: KubePlayPlan['notRun'] = [];
  for (const object of objects) {
    const id = `${object.kind}/${object.metadata.name}`;
    const why = NOT_RUN[object.kind];
    if (why) notRun.push({ object: id, why });
    else if (!RUN.has(object.kind)) {
      throw new Error(
        `${id}: no podman counterpart is defined for ${object.kind} (test/src/podman/kube-play.ts)`,
      );
    }
  }
  const addresses = [...options.addresses];
  const nextAddress = (what: string) => {
    const address = addresses.shift();
    if (!address) throw new Error(`no address left on the network for ${what}`);
    return address;
  };
  const named = (name: string) => `${options.prefix}-${name}`;

  const secrets: PlannedSecret[] = [
    ...objects
      .filter((object) => object.kind === 'Secret')
      .map((secret) => ({
        source: secret.metadata.name,
        name: named(secret.metadata.name),
        data: base64Values(secret),
        readAs: undefined,
      })),
    ...options.externalSecrets.map((source) => ({
      source,
      name: named(source),
      data: undefined,
      readAs: undefined,
    })),
  ];
  const configMaps = new Map(
    objects.filter((object) => object.kind === 'ConfigMap').map((object) => [object.metadata.name, object]),
  );
  configMaps.set(PROXY_CONFIG_MAP, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: PROXY_CONFIG_MAP },
    data: { 'service-proxy.mjs': options.serviceProxy.script },
  });
  const refs: References = {
    named,
    secret(source, user, readAs) {
      const secret = secrets.find((candidate) => candidate.source === source);
      if (!secret) throw new Error(`${user} reads Secret ${source}, which is neither rendered nor external`);
      if (secret.readAs !== undefined && secret.readAs !== readAs) {
        throw new Error(
          `${user} reads Secret ${source} as ${readAs}, others as ${secret.readAs}: podman 4.3 cannot do both`,
        );
      }
      secret.readAs = readAs;
      return secret.name;
    },
    configMap(source, user, used) {
      if (!configMaps.has(source))
        throw new Error(`${user} reads ConfigMap ${source}, which is not rendered`);
      used.add(source);
      return named(source);
    },
    configMapKeys(source) {
      return Object.keys((configMaps.get(source) as K8sObject | undefined)?.data ?? {});
    },
    image(rendered, user) {
      const image = options.images[rendered];
      if (!image) throw new Error(`${user}: no local image stands in for ${rendered}`);
      return image;
    },
    playYaml(pod, used) {
      const renamed = [...used].map((source) => {
        const configMap = configMaps.get(source) as K8sObject;
        return { ...configMap, metadata: { ...configMap.metadata, name: named(source) } };
      });
      return [...renamed, pod].map((document) => stringify(document)).join('---\n');
    },
  };

  const instances = workloadInstances(objects, options, nextAddress);
  const standIns = serviceStandIns(objects, instances, nextAddress, notRun);
  const pods = instances.map((instance, index) =>
    workloadPod(
      instance,
      [
        ...standIns.fixed,
        ...standIns.spread.map((service) => ({
          ip: (service.backends[index % service.backends.length] as PodInstance).ip,
          hostnames: service.hostnames,
        })),
      ],
      refs,
    ),
  );
  pods.push(...standIns.proxies.map((proxy) => proxyPod(proxy, options.serviceProxy.image, refs)));
  return { pods, secrets, notRun };
}
