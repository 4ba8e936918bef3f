import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { REPO_ROOT } from '../../support/manifests.js';
import { buildContextDigest } from './build-context.js';
import { inspect, podman, runCommand, tryPodman } from './podman.js';

/** Local images only: nothing can be pulled on this machine, and these never leave it. */
const REPOSITORY = 'localhost/wsdeploy';
const NODE_BINARY = process.execPath;
const NPM_DIRECTORY = join(dirname(NODE_BINARY), '..', 'lib', 'node_modules', 'npm');
/** The machine's CA bundle: outbound TLS (npm ci in the build stage) goes through an intercepting proxy. */
const CA_BUNDLE = process.env.NODE_EXTRA_CA_CERTS ?? '/etc/ssl/certs/ca-certificates.crt';
const NATS_SERVER = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server'].find((path) => existsSync(path));
/** Bump when the recipe below changes, so cached bases are rebuilt. */
const BASE_RECIPE = 'debian-bookworm-minbase+node+ca/1';
/** How many builds of one image to keep (other worktrees may be using an older one right now). */
const KEEP_BUILDS = 3;

export type ServiceImage = 'write-api' | 'stream-gateway';

export interface ImageResult {
  tag: string;
  /** What pods run: the id, which another run's pruning of tags cannot take away mid-run. */
  id: string;
  /** True when this call built it; false when a build with the same inputs was already there. */
  built: boolean;
  ms: number;
}

export interface DeploymentImages {
  /** Debian bookworm (minbase) with this machine's Node 20 and CA bundle: the NODE_IMAGE build arg. */
  base: ImageResult;
  /** The base with this machine's nats-server, standing in for nats:2.10-alpine. */
  nats: ImageResult;
  'write-api': ImageResult;
  'stream-gateway': ImageResult;
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const sha256 = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex');

async function imageExists(tag: string): Promise<boolean> {
  return (await tryPodman(['image', 'exists', tag])).code === 0;
}

/** Builds `tag` with `build` unless it exists; the tag carries the hash of everything that goes into it. */
async function cached(tag: string, build: (tag: string) => Promise<void>): Promise<ImageResult> {
  const startedAt = Date.now();
  const built = !(await imageExists(tag));
  if (built) {
    await build(tag);
    await pruneOlderBuilds(tag);
  }
  const id = (await inspect('image', tag)).Id as string;
  return { tag, id, built, ms: Date.now() - startedAt };
}

/**
 * Drops other tags of the image just built (an unchanged bundle rebuilds to the same image), and builds
 * of it older than the newest few; an image a container still uses is left alone.
 */
async function pruneOlderBuilds(tag: string): Promise<void> {
  const repository = tag.slice(0, tag.lastIndexOf(':'));
  const listed = JSON.parse(
    await podman(['images', '--filter', `reference=${repository}`, '--format', 'json']),
  ) as { Id: string; Created: number; Names?: string[] }[];
  // One entry per tag, each with all the image's names: one per image here.
  const images = [...new Map(listed.map((image) => [image.Id, image])).values()];
  const current = images.find((image) => image.Names?.includes(tag));
  const mine = (name: string) => name.startsWith(`${repository}:`);
  if (current) {
    for (const name of current.Names ?? []) {
      if (name !== tag && mine(name)) await tryPodman(['untag', current.Id, name]);
    }
  }
  const older = images.filter((image) => image !== current).sort((a, b) => b.Created - a.Created);
  for (const image of older.slice(KEEP_BUILDS - 1)) {
    for (const name of (image.Names ?? []).filter(mine)) await tryPodman(['rmi', name]);
  }
}

async function buildBase(tag: string): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), 'wsdeploy-base-'));
  try {
    const rootfs = join(directory, 'rootfs.tar');
    // Debian's nodejs is 18: copy this machine's Node 20 and npm in, where the official image has them.
    const result = await runCommand(
      'mmdebstrap',
      [
        '--variant=minbase',
        '--quiet',
        `--customize-hook=copy-in ${NODE_BINARY} /usr/local/bin`,
        '--customize-hook=mkdir -p "$1/usr/local/lib/node_modules" "$1/etc/ssl/certs"',
        `--customize-hook=copy-in ${NPM_DIRECTORY} /usr/local/lib/node_modules`,
        '--customize-hook=ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm"',
        `--customize-hook=upload ${CA_BUNDLE} /etc/ssl/certs/ca-certificates.crt`,
        'bookworm',
        rootfs,
      ],
      { timeoutMs: 5 * 60_000 },
    );
    if (result.code !== 0) throw new Error(`mmdebstrap exited with ${result.code}:\n${result.stderr}`);
    await podman(
      [
        'import',
        '--change',
        'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        '--change',
        'ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt',
        '--change',
        'LABEL io.wizard-stream.purpose=test-only-base',
        rootfs,
        tag,
      ],
      { timeoutMs: 5 * 60_000 },
    );
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

async function buildNats(tag: string, base: string, natsServer: string): Promise<void> {
  const directory = await mkdtemp(join(tmpdir(), 'wsdeploy-nats-'));
  try {
    await copyFile(natsServer, join(directory, 'nats-server'));
    // The official image's entrypoint is nats-server, so the manifest's `args` work unchanged.
    await writeFile(
      join(directory, 'Containerfile'),
      `FROM ${base}\nCOPY nats-server /usr/local/bin/nats-server\nENTRYPOINT ["/usr/local/bin/nats-server"]\n`,
    );
    await podman(['build', '--quiet', '-t', tag, directory], { timeoutMs: 5 * 60_000 });
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

async function buildService(service: ServiceImage, tag: string, base: string): Promise<void> {
  await podman(
    [
      'build',
      '--layers',
      '-f',
      join(REPO_ROOT, 'deploy', 'docker', `${service}.Dockerfile`),
      '--build-arg',
      `NODE_IMAGE=${base}`,
      '-t',
      tag,
      REPO_ROOT,
    ],
    { timeoutMs: 10 * 60_000 },
  );
}

/**
 * Every image the deployment runs, built once per set of inputs: the base on the recipe, this machine's
 * Node binary, npm and CA bundle; each service image on the base image's id, its Dockerfile and the build
 * context's content. A cached run only hashes those (a second or two).
 */
export async function ensureDeploymentImages(): Promise<DeploymentImages> {
  if (!NATS_SERVER) throw new Error('nats-server is not installed (/usr/sbin/nats-server)');
  const natsServer = NATS_SERVER;
  const npmPackage = JSON.parse(await readFile(join(NPM_DIRECTORY, 'package.json'), 'utf8')) as {
    version: string;
  };
  const baseKey = sha256(
    BASE_RECIPE,
    await sha256OfFile(NODE_BINARY),
    npmPackage.version,
    await sha256OfFile(CA_BUNDLE),
  );
  const base = await cached(`${REPOSITORY}/base:${baseKey.slice(0, 16)}`, (tag) => buildBase(tag));
  const baseId = base.id;
  const natsKey = sha256(baseId, await sha256OfFile(natsServer));
  const nats = await cached(`${REPOSITORY}/nats:${natsKey.slice(0, 16)}`, (tag) =>
    buildNats(tag, base.tag, natsServer),
  );
  const context = await buildContextDigest(REPO_ROOT);
  const service = async (name: ServiceImage) => {
    const dockerfile = await readFile(join(REPO_ROOT, 'deploy', 'docker', `${name}.Dockerfile`), 'utf8');
    const key = sha256(baseId, dockerfile, context);
    return cached(`${REPOSITORY}/${name}:${key.slice(0, 16)}`, (tag) => buildService(name, tag, base.tag));
  };
  // One after the other: the second build reuses the first one's `npm ci` layer.
  const writeApi = await service('write-api');
  const streamGateway = await service('stream-gateway');
  return { base, nats, 'write-api': writeApi, 'stream-gateway': streamGateway };
}
