/**
 * A container's environment as the kubelet resolves it: `env`/`envFrom`, `$(VAR)`
 * expansion, downward API values, service-link variables; against a live cluster or
 * a lookup; and the formats it is written out in.
 */
export type { PodFields, ResourceList } from './downward.js';
export { expandReferences, referencedNames, type VariableLookup } from './expansion.js';
export {
  type EnvFormatOptions,
  quoteDotenvValue,
  SECRET_MASK,
  toDockerEnv,
  toDotenv,
  toEnvJson,
} from './format.js';
export {
  clusterEnvLookup,
  type EnvFallbacks,
  labelSelectorString,
  resolvePodEnv,
  resolveWorkloadEnv,
  runningPods,
} from './live.js';
export {
  type EnvFromKeyRule,
  type EnvLookup,
  type EnvSource,
  envFromKeyRuleFor,
  type PodLike,
  type ResolvedEnv,
  type ResolvedEnvVar,
  type ResolveEnvInput,
  resolveEnv,
} from './resolve.js';
export { MASTER_SERVICE, serviceLinkVariables } from './service-env.js';
