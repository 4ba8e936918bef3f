import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { Job } from 'kubernetes-models/batch/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';

const run = promisify(execFile);

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A rendered Kubernetes object, as plain data. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  // biome-ignore lint/suspicious/noExplicitAny: rendered manifests are checked field by field in the tests
  spec?: any;
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** `kubectl kustomize <dir>` (offline), parsed into its objects. */
export async function renderKustomization(relativeDir: string): Promise<K8sObject[]> {
  const { stdout } = await run('kubectl', ['kustomize', join(REPO_ROOT, relativeDir)], {
    maxBuffer: 16 * 1024 * 1024,
  });
  return parseYamlDocuments(stdout, relativeDir) as K8sObject[];
}

export function parseYamlDocuments(text: string, source: string): unknown[] {
  return parseAllDocuments(text).map((document, index) => {
    if (document.errors.length > 0) {
      throw new Error(`${source}: YAML document ${index} does not parse: ${document.errors[0]?.message}`);
    }
    return document.toJS();
  });
}

interface Validatable {
  validate(): void;
}

/** The kubernetes-models class of every apiVersion/kind the manifests may use. */
const MODELS: Record<string, new (data: never) => Validatable> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'apps/v1/StatefulSet': StatefulSet,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'networking.k8s.io/v1/Ingress': Ingress,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

/**
 * Validates one object against the Kubernetes API's OpenAPI schema (kubernetes-models' generated
 * validators). Throws with the object's kind and name on a schema violation or an unknown kind.
 */
export function validateAgainstApiSchema(object: K8sObject): void {
  const key = `${object.apiVersion}/${object.kind}`;
  const Model = MODELS[key];
  if (!Model) throw new Error(`no schema model for ${key} (${object.metadata?.name}); add it to MODELS`);
  try {
    new Model(object as never).validate();
  } catch (error) {
    throw new Error(`${key} ${object.metadata?.name} is invalid: ${(error as Error).message}`);
  }
}

export function findObject(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((object) => object.kind === kind && object.metadata.name === name);
  if (!found) throw new Error(`no ${kind} named ${name} in the rendered manifests`);
  return found;
}

// biome-ignore lint/suspicious/noExplicitAny: pod specs are plain rendered data
export function podSpecOf(object: K8sObject): any {
  return object.spec?.template?.spec;
}

/** Every workload that runs pods. */
export function workloads(objects: K8sObject[]): K8sObject[] {
  return objects.filter((object) => ['Deployment', 'StatefulSet', 'Job'].includes(object.kind));
}

/** Turns an ingress-nginx regex path into the (case-insensitive, prefix-anchored) pattern nginx applies. */
export function nginxRegexLocation(path: string): RegExp {
  return new RegExp(`^${path}`, 'i');
}
