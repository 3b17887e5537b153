/**
 * resolveVolumes against a live cluster: the lookup reads through KubeClient and mints
 * tokens with TokenRequest; the helpers pick the pod and the node's allocatable.
 */
import type { V1Node, V1Pod } from '@kubernetes/client-node';
import { DevboxError } from '../../util/errors.js';
import { KubeApiError } from '../api/errors.js';
import type { KubeClient } from '../client.js';
import type { ResourceList } from '../env/downward.js';
import { runningPods } from '../env/live.js';
import { podTemplate, type Workload, workloadLabel } from '../workload.js';
import { type ResolveVolumesInput, resolveVolumes, type VolumeLayout, type VolumeLookup } from './resolve.js';

/** The client calls volumes need. */
export type VolumeClient = Pick<KubeClient, 'get' | 'requestToken'>;

/** A VolumeLookup reading the cluster through `client`. */
export function clusterVolumeLookup(client: VolumeClient): VolumeLookup {
  return {
    getConfigMap: (namespace, name) => client.get('ConfigMap', namespace, name),
    getSecret: (namespace, name) => client.get('Secret', namespace, name),
    getServiceAccount: (namespace, name) => client.get('ServiceAccount', namespace, name),
    requestToken: (namespace, serviceAccount, options) =>
      client.requestToken(namespace, serviceAccount, options),
  };
}

function isForbidden(err: unknown): boolean {
  return err instanceof KubeApiError && (err.status === 403 || err.status === 401);
}

/** The node's allocatable resources; undefined when there is no node or it cannot be read. */
export async function nodeAllocatable(
  client: Pick<KubeClient, 'get'>,
  nodeName: string | undefined,
): Promise<ResourceList | undefined> {
  if (!nodeName) return undefined;
  let node: V1Node | undefined;
  try {
    node = await client.get('Node', '', nodeName);
  } catch (err) {
    if (isForbidden(err)) return undefined;
    throw err;
  }
  return node?.status?.allocatable as ResourceList | undefined;
}

export interface LiveVolumesOptions {
  /** The container's resolved env (for `subPathExpr`). */
  env?: Readonly<Record<string, string>>;
}

/** The input for `container` of a running pod: its own spec, metadata and node. */
export async function podVolumesInput(
  client: Pick<KubeClient, 'get'>,
  pod: V1Pod,
  container: string,
  options: LiveVolumesOptions = {},
): Promise<ResolveVolumesInput> {
  return {
    pod,
    container,
    nodeAllocatable: await nodeAllocatable(client, pod.spec?.nodeName),
    env: options.env,
  };
}

/** The volumes of `container` in a running pod, as its kubelet mounted them. */
export async function resolvePodVolumes(
  client: VolumeClient,
  namespace: string,
  podName: string,
  container: string,
  options: LiveVolumesOptions = {},
): Promise<VolumeLayout> {
  const pod = await client.get('Pod', namespace, podName);
  if (!pod) throw new DevboxError('NOT_FOUND', `pod "${podName}" not found in namespace "${namespace}"`);
  return resolveVolumes(await podVolumesInput(client, pod, container, options), clusterVolumeLookup(client));
}

/**
 * The input for a workload: its newest running pod when there is one (the spec the
 * kubelet mounted, with the admission-added token volume), else its pod template.
 */
export async function workloadVolumesInput(
  client: Pick<KubeClient, 'get' | 'list' | 'namespace'>,
  workload: Workload,
  container: string,
  options: LiveVolumesOptions = {},
): Promise<{ input: ResolveVolumesInput; pod: V1Pod | undefined; warnings: string[] }> {
  const [pod] = await runningPods(client as KubeClient, workload);
  if (pod) return { input: await podVolumesInput(client, pod, container, options), pod, warnings: [] };
  const namespace = workload.metadata?.namespace ?? client.namespace;
  return {
    input: { pod: podTemplate(workload), container, namespace, env: options.env },
    pod: undefined,
    warnings: [
      `${workloadLabel(workload.kind, workload.metadata?.name ?? '')} has no running pod: volumes read from its pod template`,
    ],
  };
}

/** The volumes of `container` for a workload (see {@link workloadVolumesInput}). */
export async function resolveWorkloadVolumes(
  client: VolumeClient & Pick<KubeClient, 'list' | 'namespace'>,
  workload: Workload,
  container: string,
  options: LiveVolumesOptions = {},
): Promise<VolumeLayout> {
  const { input, warnings } = await workloadVolumesInput(client, workload, container, options);
  const layout = await resolveVolumes(input, clusterVolumeLookup(client));
  layout.warnings.push(...warnings);
  return layout;
}
