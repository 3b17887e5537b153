/**
 * The namespaced objects a session adds next to the workload: the agent's
 * bundle (ConfigMap) and session token (Secret). Each carries a label so
 * `down` and `clean` remove exactly what devbox made. (The sidecar's account
 * is the administrator's: see sidecar-account.ts.)
 */
import { randomBytes } from 'node:crypto';
import type { V1ConfigMap, V1Secret } from '@kubernetes/client-node';
import { agentObjectNames, type KubeClient, type Workload, type WorkloadKind } from '../kube/index.js';

export const MANAGED_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_VALUE = 'devbox';

export interface AgentObjects {
  configMap: string;
  secret: string;
  token: string;
}

/** On the agent's ConfigMap and Secret: the session that wrote them (and alone may remove them on failure). */
export const SESSION_LABEL = 'devbox.dev/session';

/**
 * Writes the bundle ConfigMap and a fresh token Secret for `session` (replacing leftovers of a
 * crashed session: the caller holds the workload's claim).
 */
export async function writeAgentObjects(
  client: KubeClient,
  workload: Workload,
  bundle: string,
  session: string,
): Promise<AgentObjects> {
  const namespace = workload.metadata!.namespace!;
  const names = agentObjectNames(workload.kind, workload.metadata!.name!);
  const labels = {
    [MANAGED_LABEL]: MANAGED_VALUE,
    'devbox.dev/workload': workload.metadata!.name!,
    [SESSION_LABEL]: session,
  };
  const token = randomBytes(24).toString('base64url');
  const configMap: V1ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: names.configMap, namespace, labels },
    data: { 'agent.mjs': bundle },
  };
  const secret: V1Secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: names.secret, namespace, labels },
    type: 'Opaque',
    stringData: { token },
  };
  await upsert(client, 'ConfigMap', configMap);
  await upsert(client, 'Secret', secret);
  return { ...names, token };
}

async function upsert<K extends 'ConfigMap' | 'Secret'>(
  client: KubeClient,
  kind: K,
  object: K extends 'ConfigMap' ? V1ConfigMap : V1Secret,
): Promise<void> {
  const { namespace, name } = object.metadata as { namespace: string; name: string };
  const existing = await client.get(kind, namespace, name);
  if (!existing) {
    await client.create(kind, object as never);
    return;
  }
  await client.replace(kind, {
    ...object,
    metadata: { ...object.metadata, resourceVersion: existing.metadata?.resourceVersion },
  } as never);
}

/** The token of an agent already in place (a session resumed by the same user). */
export async function readAgentToken(client: KubeClient, workload: Workload): Promise<string | undefined> {
  const names = agentObjectNames(workload.kind, workload.metadata!.name!);
  const secret = await client.get('Secret', workload.metadata!.namespace!, names.secret);
  const encoded = secret?.data?.token;
  return encoded ? Buffer.from(encoded, 'base64').toString('utf8') : undefined;
}

export async function deleteAgentObjects(
  client: KubeClient,
  namespace: string,
  kind: WorkloadKind,
  name: string,
): Promise<string[]> {
  const names = agentObjectNames(kind, name);
  const removed: string[] = [];
  if (await client.delete('ConfigMap', namespace, names.configMap))
    removed.push(`configmap/${names.configMap}`);
  if (await client.delete('Secret', namespace, names.secret)) removed.push(`secret/${names.secret}`);
  return removed;
}

/** Removes the agent's ConfigMap and Secret only where `session` wrote them (the undo of a failed `up`). */
export async function deleteSessionAgentObjects(
  client: KubeClient,
  namespace: string,
  kind: WorkloadKind,
  name: string,
  session: string,
): Promise<string[]> {
  const names = agentObjectNames(kind, name);
  const removed: string[] = [];
  for (const [k, objectName] of [
    ['ConfigMap', names.configMap],
    ['Secret', names.secret],
  ] as const) {
    const object = await client.get(k, namespace, objectName);
    if (object?.metadata?.labels?.[SESSION_LABEL] !== session) continue;
    if (await client.delete(k, namespace, objectName, { uid: object.metadata.uid }))
      removed.push(`${k.toLowerCase()}/${objectName}`);
  }
  return removed;
}
