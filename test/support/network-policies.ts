import type { K8sObject } from './manifests.js';

/** A pod as NetworkPolicies see it: its namespace (with that namespace's labels) and its own labels. */
export interface PolicyPeer {
  namespace: string;
  namespaceLabels: Record<string, string>;
  podLabels: Record<string, string>;
}

/** A pod that receives connections, with the named container ports a policy's `port: <name>` refers to. */
export interface PolicyTarget extends PolicyPeer {
  ports: { name?: string; containerPort: number }[];
}

interface Selector {
  matchLabels?: Record<string, string>;
  matchExpressions?: unknown[];
}

function selects(selector: Selector, labels: Record<string, string>): boolean {
  if (selector.matchExpressions?.length) throw new Error('matchExpressions are not evaluated here: add them');
  return Object.entries(selector.matchLabels ?? {}).every(([key, value]) => labels[key] === value);
}

function peerMatches(
  peer: { podSelector?: Selector; namespaceSelector?: Selector; ipBlock?: unknown },
  from: PolicyPeer,
  policyNamespace: string,
): boolean {
  if (peer.ipBlock) throw new Error('ipBlock peers are not evaluated here: add them');
  const namespaceOk = peer.namespaceSelector
    ? selects(peer.namespaceSelector, from.namespaceLabels)
    : from.namespace === policyNamespace;
  const podOk = peer.podSelector ? selects(peer.podSelector, from.podLabels) : true;
  return namespaceOk && podOk;
}

/**
 * Whether the rendered NetworkPolicies let `from` open a connection to `port` (a container port name or
 * number) of `to`, by the Kubernetes rules: a pod no Ingress policy selects accepts everything; a
 * selected pod accepts what at least one rule of one selecting policy allows.
 */
export function admits(
  objects: K8sObject[],
  from: PolicyPeer,
  to: PolicyTarget,
  port: string | number,
): boolean {
  const selecting = objects.filter(
    (object) =>
      object.kind === 'NetworkPolicy' &&
      (object.metadata.namespace ?? '') === to.namespace &&
      (object.spec.policyTypes ?? ['Ingress']).includes('Ingress') &&
      selects(object.spec.podSelector ?? {}, to.podLabels),
  );
  if (selecting.length === 0) return true;
  const number =
    typeof port === 'number' ? port : to.ports.find((candidate) => candidate.name === port)?.containerPort;
  if (number === undefined) throw new Error(`the target has no container port named ${port}`);
  return selecting.some((policy) =>
    (policy.spec.ingress ?? []).some(
      (rule: { from?: never[]; ports?: { port?: string | number }[] }) =>
        (rule.from === undefined ||
          rule.from.length === 0 ||
          rule.from.some((peer) => peerMatches(peer, from, to.namespace))) &&
        (rule.ports === undefined ||
          rule.ports.length === 0 ||
          rule.ports.some(
            (allowed) =>
              allowed.port === undefined ||
              allowed.port === number ||
              (typeof allowed.port === 'string' &&
                to.ports.find((candidate) => candidate.name === allowed.port)?.containerPort === number),
          )),
    ),
  );
}
