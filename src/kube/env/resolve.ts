/**
 * A container's environment, resolved exactly as the kubelet does
 * (pkg/kubelet/kubelet_pods.go makeEnvironmentVariables):
 *
 * 1. `envFrom` sources in order, each key optionally prefixed; later sources overwrite.
 * 2. `env` entries in order: a non-empty `value` has its `$(VAR)` references expanded
 *    against the variables set so far and then the service variables; otherwise
 *    `valueFrom` is resolved. An optional reference that is missing leaves the name as
 *    it was (possibly set by `envFrom`). Later entries overwrite earlier ones.
 * 3. Service-link variables not already set are added.
 *
 * The kubelet emits steps 1–2 and 3 in Go map order, i.e. randomly; here a name keeps
 * the position where it was first set, and service variables follow, which makes
 * the output stable without changing any value.
 */
import type {
  V1ConfigMap,
  V1Container,
  V1ObjectMeta,
  V1PodSpec,
  V1PodStatus,
  V1ResourceFieldSelector,
  V1Secret,
  V1Service,
} from '@kubernetes/client-node';
import { DevboxError } from '../../util/errors.js';
import { findContainer, podContainer } from '../pod-container.js';
import {
  defaultedRequests,
  effectiveLimits,
  fieldRefValue,
  needsLivePod,
  type PodFields,
  type ResourceList,
  resourceFieldRefValue,
} from './downward.js';
import { expandReferences, referencedNames } from './expansion.js';
import { MASTER_SERVICE, serviceLinkVariables, servicesVisibleToPod } from './service-env.js';

/** Where the env reads cluster objects from. Missing objects resolve to `undefined`. */
export interface EnvLookup {
  getConfigMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  getSecret(namespace: string, name: string): Promise<V1Secret | undefined>;
  /** Services of a namespace (for service links). */
  listServices(namespace: string): Promise<V1Service[]>;
  /**
   * The `kubernetes` Service of the `default` namespace. `undefined` when it cannot be
   * read (a namespaced Role cannot grant it); the KUBERNETES_* variables are then
   * missing and a warning says so.
   */
  getMasterService(): Promise<V1Service | undefined>;
}

/** A pod or a pod template: what the container spec is read from. */
export interface PodLike {
  metadata?: V1ObjectMeta;
  spec?: V1PodSpec;
  status?: V1PodStatus;
}

/**
 * Which envFrom keys the kubelet accepts. Kubelets since 1.32 accept every key (the
 * API already guarantees printable ASCII without `=`); older ones skip keys that are
 * not C-like identifiers (`[-._a-zA-Z][-._a-zA-Z0-9]*`) and report them in an event.
 */
export type EnvFromKeyRule = 'relaxed' | 'strict';

export interface ResolveEnvInput {
  /** The pod, or the workload's pod template, holding the container. */
  pod: PodLike;
  /** Container to resolve (`spec.containers`, then `spec.initContainers`). */
  container: string;
  /** Namespace; defaults to `pod.metadata.namespace`. */
  namespace?: string;
  /**
   * A running pod of the workload, for fieldRefs when `pod` is a template (name, uid,
   * IPs, node). Defaults to `pod` itself.
   */
  livePod?: PodFields;
  /** The node's `status.allocatable`, used for limits the container does not set. */
  nodeAllocatable?: ResourceList;
  /** See EnvFromKeyRule; default 'relaxed'. */
  envFromKeys?: EnvFromKeyRule;
}

/** Where a variable's final value came from. */
export type EnvSource = 'value' | 'configMap' | 'secret' | 'field' | 'resource' | 'service';

export interface ResolvedEnvVar {
  name: string;
  value: string;
  /** True when the value came from a Secret, or `$(...)` pulled a Secret's value in. */
  secret: boolean;
  source: EnvSource;
}

export interface ResolvedEnv {
  vars: ResolvedEnvVar[];
  /** Things that make the result differ from the kubelet's, or that the kubelet would report as events. */
  warnings: string[];
}

const strictEnvName = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
// Printable ASCII except '=' (the API's relaxed rule since 1.30).
const relaxedEnvName = /^[\x20-\x3c\x3e-\x7e]+$/;

/** The rule a kubelet of the given version (`v1.31.4`, `1.35`) applies to envFrom keys. */
export function envFromKeyRuleFor(kubeletVersion: string): EnvFromKeyRule {
  const m = /^v?(\d+)\.(\d+)/.exec(kubeletVersion);
  if (!m) return 'relaxed';
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 1 || minor >= 32 ? 'relaxed' : 'strict';
}

function decodeSecretValue(data: string): string {
  return Buffer.from(data, 'base64').toString('utf8');
}

/** Caches each ConfigMap/Secret per call, as the kubelet does within one container start. */
class ObjectCache {
  private readonly configMaps = new Map<string, V1ConfigMap>();
  private readonly secrets = new Map<string, V1Secret>();
  constructor(
    private readonly lookup: EnvLookup,
    private readonly namespace: string,
  ) {}

  /** The ConfigMap, `undefined` when missing and optional; throws like the kubelet otherwise. */
  async configMap(name: string, optional: boolean): Promise<V1ConfigMap | undefined> {
    const cached = this.configMaps.get(name);
    if (cached) return cached;
    const cm = await this.lookup.getConfigMap(this.namespace, name);
    if (!cm) {
      if (optional) return undefined;
      throw new DevboxError('NOT_FOUND', `configmap "${name}" not found`, {
        hint: `the pod cannot start either (CreateContainerConfigError); create ConfigMap ${this.namespace}/${name} or mark the reference optional`,
      });
    }
    this.configMaps.set(name, cm);
    return cm;
  }

  async secret(name: string, optional: boolean): Promise<V1Secret | undefined> {
    const cached = this.secrets.get(name);
    if (cached) return cached;
    const s = await this.lookup.getSecret(this.namespace, name);
    if (!s) {
      if (optional) return undefined;
      throw new DevboxError('NOT_FOUND', `secret "${name}" not found`, {
        hint: `the pod cannot start either (CreateContainerConfigError); create Secret ${this.namespace}/${name} or mark the reference optional`,
      });
    }
    this.secrets.set(name, s);
    return s;
  }
}

/**
 * Resolves the environment of `input.container` as the kubelet would start it.
 * Throws DevboxError (NOT_FOUND, BAD_INPUT) where the kubelet would refuse to start
 * the container, with the kubelet's wording.
 */
export async function resolveEnv(input: ResolveEnvInput, lookup: EnvLookup): Promise<ResolvedEnv> {
  const { spec, container, namespace } = podContainer(input, 'resolveEnv');
  const warnings: string[] = [];
  const keyRule = input.envFromKeys === 'strict' ? strictEnvName : relaxedEnvName;
  const live = input.livePod ?? (input.pod.status ? input.pod : undefined);
  // A template has no namespace of its own; the pod created from it has the workload's.
  const fieldPod: PodFields = live ?? { ...input.pod, metadata: { namespace, ...input.pod.metadata } };
  const cache = new ObjectCache(lookup, namespace);

  const serviceEnv = await serviceVariables(namespace, spec.enableServiceLinks !== false, lookup, warnings);
  const env = new Map<string, { value: string; secret: boolean; source: EnvSource }>();

  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    let entries: [string, string][] = [];
    let kind: 'configMap' | 'secret';
    let sourceName: string;
    if (from.configMapRef) {
      kind = 'configMap';
      sourceName = from.configMapRef.name ?? '';
      const cm = await cache.configMap(sourceName, from.configMapRef.optional === true);
      if (!cm) continue;
      entries = Object.entries(cm.data ?? {});
    } else if (from.secretRef) {
      kind = 'secret';
      sourceName = from.secretRef.name ?? '';
      const s = await cache.secret(sourceName, from.secretRef.optional === true);
      if (!s) continue;
      entries = Object.entries(s.data ?? {}).map(([k, v]) => [k, decodeSecretValue(v)]);
    } else {
      continue;
    }
    const invalid: string[] = [];
    for (const [key, value] of entries) {
      const name = prefix + key;
      if (!keyRule.test(name)) {
        invalid.push(name);
        continue;
      }
      env.set(name, { value, secret: kind === 'secret', source: kind });
    }
    if (invalid.length) {
      warnings.push(
        `Keys [${invalid.sort().join(', ')}] from the EnvFrom ${kind === 'secret' ? 'secret' : 'configMap'} ${namespace}/${sourceName} were skipped since they are considered invalid environment variable names.`,
      );
    }
  }

  for (const e of container.env ?? []) {
    if (e.value) {
      const value = expandReferences(e.value, (name) => env.get(name)?.value ?? serviceEnv.get(name));
      const secret = referencedNames(e.value).some((n) => env.get(n)?.secret === true);
      env.set(e.name, { value, secret, source: 'value' });
      continue;
    }
    const from = e.valueFrom;
    if (!from) {
      env.set(e.name, { value: '', secret: false, source: 'value' });
      continue;
    }
    if (from.fieldRef) {
      const path = from.fieldRef.fieldPath;
      if (!live && needsLivePod(path)) {
        throw new DevboxError('BAD_INPUT', `env ${e.name} reads ${path}, which needs a running pod`, {
          hint: 'scale the workload up so that one of its pods is running, or pass a live pod',
        });
      }
      if (!live && (path === 'metadata.labels' || path === 'metadata.annotations')) {
        warnings.push(
          `env ${e.name}: ${path} read from the pod template, without what controllers add to a running pod`,
        );
      }
      env.set(e.name, { value: fieldRefValue(from.fieldRef, fieldPod), secret: false, source: 'field' });
    } else if (from.resourceFieldRef) {
      const value = resourceValue(
        e.name,
        from.resourceFieldRef,
        container,
        spec,
        input.nodeAllocatable,
        warnings,
      );
      if (value !== undefined) env.set(e.name, { value, secret: false, source: 'resource' });
    } else if (from.configMapKeyRef) {
      const ref = from.configMapKeyRef;
      const optional = ref.optional === true;
      const cm = await cache.configMap(ref.name ?? '', optional);
      if (!cm) continue;
      const value = cm.data?.[ref.key];
      if (value === undefined) {
        if (optional) continue;
        throw missingKey('ConfigMap', namespace, ref);
      }
      env.set(e.name, { value, secret: false, source: 'configMap' });
    } else if (from.secretKeyRef) {
      const ref = from.secretKeyRef;
      const optional = ref.optional === true;
      const s = await cache.secret(ref.name ?? '', optional);
      if (!s) continue;
      const data = s.data?.[ref.key];
      if (data === undefined) {
        if (optional) continue;
        throw missingKey('Secret', namespace, ref);
      }
      env.set(e.name, { value: decodeSecretValue(data), secret: true, source: 'secret' });
    } else {
      // fileKeyRef reads a file inside the pod's volumes, which only the pod can see.
      warnings.push(
        `env ${e.name}: its valueFrom source can only be read inside the pod; ${e.name} is left out`,
      );
    }
  }

  const vars: ResolvedEnvVar[] = [...env].map(([name, v]) => ({ name, ...v }));
  for (const [name, value] of serviceEnv) {
    if (!env.has(name)) vars.push({ name, value, secret: false, source: 'service' });
  }
  return { vars, warnings };
}

async function serviceVariables(
  namespace: string,
  enableServiceLinks: boolean,
  lookup: EnvLookup,
  warnings: string[],
): Promise<Map<string, string>> {
  const [master, own] = await Promise.all([
    lookup.getMasterService(),
    enableServiceLinks ? lookup.listServices(namespace) : Promise.resolve([]),
  ]);
  if (!master) {
    warnings.push(
      `KUBERNETES_SERVICE_* and KUBERNETES_PORT* are missing: Service ${MASTER_SERVICE.namespace}/${MASTER_SERVICE.name} could not be read`,
    );
  }
  const services = servicesVisibleToPod(namespace, enableServiceLinks, own, master);
  const out = new Map<string, string>();
  for (const { name, value } of serviceLinkVariables(services)) out.set(name, value);
  return out;
}

function resourceValue(
  envName: string,
  ref: V1ResourceFieldSelector,
  container: V1Container,
  spec: V1PodSpec,
  nodeAllocatable: ResourceList | undefined,
  warnings: string[],
): string | undefined {
  let target = container;
  if (ref.containerName) {
    const other = findContainer(spec, ref.containerName);
    if (!other) throw new DevboxError('NOT_FOUND', `container ${ref.containerName} not found`);
    target = other;
  }
  // The kubelet defaults limits of regular containers only, not of init containers.
  const isRegular = spec.containers.includes(target);
  const { limits, unknown } = isRegular
    ? effectiveLimits(target, spec, nodeAllocatable)
    : { limits: { ...(target.resources?.limits ?? {}) }, unknown: [] as string[] };
  const resource = ref.resource.replace(/^limits\./, '');
  if (ref.resource.startsWith('limits.') && unknown.includes(resource)) {
    warnings.push(
      `env ${envName}: container ${target.name} sets no ${resource} limit, so the kubelet uses the node's allocatable ${resource}, which could not be read; ${envName} is left out`,
    );
    return undefined;
  }
  return resourceFieldRefValue(ref, defaultedRequests(target), limits);
}

/** A required key missing from its ConfigMap or Secret: the kubelet refuses to start the container too. */
function missingKey(
  kind: 'ConfigMap' | 'Secret',
  namespace: string,
  ref: { name?: string; key: string },
): DevboxError {
  return new DevboxError('NOT_FOUND', `couldn't find key ${ref.key} in ${kind} ${namespace}/${ref.name}`, {
    hint: 'the pod cannot start either (CreateContainerConfigError); add the key or mark the reference optional',
  });
}
