/**
 * Downward API values for env: `fieldRef` (pod metadata and status) and
 * `resourceFieldRef` (container requests/limits), computed as the kubelet does.
 */
import type {
  V1Container,
  V1ObjectFieldSelector,
  V1ObjectMeta,
  V1PodSpec,
  V1PodStatus,
  V1ResourceFieldSelector,
} from '@kubernetes/client-node';
import { DevboxError } from '../../util/errors.js';
import {
  isZeroQuantity,
  parseQuantity,
  type Quantity,
  quantityMilliValue,
  quantityValue,
} from './quantity.js';

/** Quantities by resource name, e.g. `{ cpu: '2', memory: '4Gi' }` (a node's allocatable). */
export type ResourceList = Record<string, string>;

/** What fieldRefs read: the running pod's metadata, spec and status. */
export interface PodFields {
  metadata?: V1ObjectMeta;
  spec?: Pick<V1PodSpec, 'nodeName' | 'serviceAccountName'>;
  status?: Pick<V1PodStatus, 'podIP' | 'podIPs' | 'hostIP' | 'hostIPs'>;
}

/** Fields that only a running pod can answer. */
const liveOnlyFields = new Set([
  'metadata.name',
  'metadata.uid',
  'spec.nodeName',
  'status.podIP',
  'status.podIPs',
  'status.hostIP',
  'status.hostIPs',
]);

/** True when `fieldPath` needs a scheduled, running pod rather than a template. */
export function needsLivePod(fieldPath: string): boolean {
  return liveOnlyFields.has(fieldPath === 'spec.host' ? 'spec.nodeName' : fieldPath);
}

function splitSubscript(path: string): { path: string; key: string } | undefined {
  if (!path.endsWith("']")) return undefined;
  const inner = path.slice(0, -2);
  const at = inner.indexOf("['");
  if (at <= 0) return undefined;
  return { path: inner.slice(0, at), key: inner.slice(at + 2) };
}

/** Go's strconv.Quote for the `key="value"` lines of whole-map fieldRefs. */
function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c === 7) out += '\\a';
    else if (c === 8) out += '\\b';
    else if (c === 12) out += '\\f';
    else if (c === 10) out += '\\n';
    else if (c === 13) out += '\\r';
    else if (c === 9) out += '\\t';
    else if (c === 11) out += '\\v';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

function formatMap(map: Record<string, string> | undefined): string {
  const m = map ?? {};
  return Object.keys(m)
    .sort()
    .map((k) => `${k}=${goQuote(m[k] as string)}`)
    .join('\n');
}

/** The value of an env `fieldRef` for `pod`. Errors are worded like the kubelet's. */
export function fieldRefValue(ref: V1ObjectFieldSelector, pod: PodFields): string {
  const version = ref.apiVersion || 'v1';
  if (version !== 'v1') throw new DevboxError('BAD_INPUT', `unsupported pod version: ${version}`);
  const sub = splitSubscript(ref.fieldPath);
  if (sub) {
    if (sub.path === 'metadata.annotations') return pod.metadata?.annotations?.[sub.key] ?? '';
    if (sub.path === 'metadata.labels') return pod.metadata?.labels?.[sub.key] ?? '';
    throw new DevboxError('BAD_INPUT', `field label does not support subscript: ${ref.fieldPath}`);
  }
  const podIPs = pod.status?.podIPs?.map((p) => p.ip) ?? (pod.status?.podIP ? [pod.status.podIP] : []);
  const hostIPs = pod.status?.hostIPs?.map((h) => h.ip) ?? (pod.status?.hostIP ? [pod.status.hostIP] : []);
  switch (ref.fieldPath) {
    case 'spec.nodeName':
    case 'spec.host':
      return pod.spec?.nodeName ?? '';
    case 'spec.serviceAccountName':
      return pod.spec?.serviceAccountName ?? '';
    case 'status.hostIP':
      return hostIPs[0] ?? '';
    case 'status.hostIPs':
      return hostIPs.join(',');
    case 'status.podIP':
      return podIPs[0] ?? '';
    case 'status.podIPs':
      return podIPs.join(',');
    case 'metadata.annotations':
      return formatMap(pod.metadata?.annotations);
    case 'metadata.labels':
      return formatMap(pod.metadata?.labels);
    case 'metadata.name':
      return pod.metadata?.name ?? '';
    case 'metadata.namespace':
      return pod.metadata?.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata?.uid ?? '';
    default:
      throw new DevboxError('BAD_INPUT', `unsupported fieldPath: ${ref.fieldPath}`);
  }
}

const mergedLimitResources = ['cpu', 'memory', 'ephemeral-storage'] as const;

/**
 * The limits the kubelet sees for a container: its own, with cpu, memory and
 * ephemeral-storage that are unset or zero taken from the pod-level limits (cpu and
 * memory) or else the node's allocatable. `nodeAllocatable` undefined means unknown
 * (the caller may not read Nodes): then only pod-level limits can fill the gaps, and
 * the resources left without a value are listed in `unknown`.
 */
export function effectiveLimits(
  container: V1Container,
  podSpec: Pick<V1PodSpec, 'resources'>,
  nodeAllocatable: ResourceList | undefined,
): { limits: ResourceList; unknown: string[] } {
  const limits: ResourceList = { ...(container.resources?.limits ?? {}) };
  const podLimits = podSpec.resources?.limits ?? {};
  const unknown: string[] = [];
  for (const r of mergedLimitResources) {
    const own = limits[r];
    if (own !== undefined && !isZeroQuantity(parseQuantity(own))) continue;
    const podLevel = r === 'ephemeral-storage' ? undefined : podLimits[r];
    const usable = podLevel !== undefined && !isZeroQuantity(parseQuantity(podLevel)) ? podLevel : undefined;
    let fallback: string | undefined;
    if (nodeAllocatable === undefined) fallback = usable;
    else if (nodeAllocatable[r] !== undefined) fallback = usable ?? nodeAllocatable[r];
    if (fallback !== undefined) limits[r] = fallback;
    else if (nodeAllocatable === undefined) unknown.push(r);
  }
  return { limits, unknown };
}

/** Requests as the API server defaults them on a pod: a missing request takes the limit. */
export function defaultedRequests(container: V1Container): ResourceList {
  return { ...(container.resources?.limits ?? {}), ...(container.resources?.requests ?? {}) };
}

function quantityOrZero(list: ResourceList | undefined, name: string): Quantity {
  const v = list?.[name];
  return v === undefined ? { num: 0n, den: 1n } : parseQuantity(v);
}

/**
 * The value of an env `resourceFieldRef` for `container`, whose limits must already be
 * defaulted (see `effectiveLimits`). CPU divides milli-values, everything else whole
 * values, rounding up, in float64 as the kubelet does.
 */
export function resourceFieldRefValue(
  ref: V1ResourceFieldSelector,
  requests: ResourceList | undefined,
  limits: ResourceList | undefined,
): string {
  let divisor = ref.divisor === undefined ? { num: 0n, den: 1n } : parseQuantity(String(ref.divisor));
  if (isZeroQuantity(divisor)) divisor = { num: 1n, den: 1n };
  const [kind, ...rest] = ref.resource.split('.');
  const name = rest.join('.');
  const list = kind === 'limits' ? limits : kind === 'requests' ? requests : undefined;
  const supported =
    name === 'cpu' || name === 'memory' || name === 'ephemeral-storage' || name.startsWith('hugepages-');
  if (list === undefined && kind !== 'limits' && kind !== 'requests') {
    throw new DevboxError('BAD_INPUT', `unsupported container resource : ${ref.resource}`);
  }
  if (!supported) throw new DevboxError('BAD_INPUT', `unsupported container resource : ${ref.resource}`);
  const q = quantityOrZero(list, name);
  const ratio =
    name === 'cpu'
      ? Number(quantityMilliValue(q)) / Number(quantityMilliValue(divisor))
      : Number(quantityValue(q)) / Number(quantityValue(divisor));
  return String(Math.ceil(ratio));
}
