/**
 * The Kubernetes side of devbox: cluster access (client, kubeconfig, permissions),
 * workload lookup, the container environment as the kubelet resolves it, and the
 * agent intercept with its exact undo.
 */
export { assertPermissions, missingPermissions } from './access.js';
export { KubeApiError, RBAC_TEMPLATE } from './api-errors.js';
export {
  type AccessCheck,
  apiVersionOf,
  type ClusterInfo,
  createKubeClient,
  type Kind,
  type KindTypes,
  type KubeClient,
  type KubeClientOptions,
  type ListOptions,
  type MintedToken,
  type ObjectList,
  type PatchType,
  RESOURCES,
  type RequestOptions,
  resourcePath,
  type WaitOptions,
  type WatchEvent,
  type WatchEventType,
  type WatchOptions,
} from './client.js';
export type { PodFields, ResourceList } from './env/downward.js';
export { expandReferences } from './env/expansion.js';
export {
  type EnvFormatOptions,
  quoteDotenvValue,
  SECRET_MASK,
  toDockerEnv,
  toDotenv,
  toEnvJson,
} from './env/format.js';
export {
  clusterEnvLookup,
  labelSelectorString,
  resolvePodEnv,
  resolveWorkloadEnv,
  runningPods,
} from './env/live.js';
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
} from './env/resolve.js';
export { MASTER_SERVICE, serviceLinkVariables } from './env/service-env.js';
export {
  AGENT_BUNDLE_FILE,
  AGENT_BUNDLE_VOLUME,
  AGENT_CONTAINER,
  AGENT_MOUNT_PATH,
  AGENT_POD_FILES_ROOT,
  AGENT_UID,
  type AgentFileMount,
  type AgentSettings,
  ANNOTATION_ORIGINAL,
  ANNOTATION_SESSION,
  agentPortName,
  assertNotIntercepted,
  DEFAULT_FIRST_AGENT_PORT,
  DEFAULT_TUNNEL_PORT,
  describeHolder,
  type InterceptedPort,
  type InterceptPlan,
  type InterceptRequest,
  isSameHolder,
  planIntercept,
  type Restored,
  type RestoreOptions,
  type RolloutMode,
  restoreService,
  restoreWorkload,
  type ServiceOriginal,
  type SessionHolder,
  serviceOriginal,
  sessionOf,
  type WorkloadOriginal,
  workloadOriginal,
} from './intercept.js';
export {
  agentObjectNames,
  type FoundSession,
  findSessions,
  findWorkload,
  getWorkload,
  listWorkloads,
  type RestoreReport,
  restoreSession,
  updateWithRetry,
  writeServices,
  writeWorkload,
} from './intercept-live.js';
export { type KubeTarget, kubeconfigFiles, type LoadedKubeConfig, loadKubeConfig } from './kubeconfig.js';
export {
  DEVELOPER_PERMISSIONS,
  DEVELOPER_ROLE,
  type DevboxCommand,
  describePermission,
  type Permission,
  type PolicyRule,
  permissionsFor,
  rbacManifests,
  rulesFor,
  SIDECAR_ACCOUNT,
  SIDECAR_PERMISSIONS,
} from './rbac.js';
export { closestNames } from './suggest.js';
export {
  chooseWorkload,
  otherWorkloadsSelected,
  parseWorkloadRef,
  pickContainer,
  podTemplate,
  portsReachingContainer,
  resolveTargetPort,
  type ServicePortTarget,
  servicesSelecting,
  type Workload,
  type WorkloadKind,
  type WorkloadRef,
  workloadLabel,
  workloadNotFound,
} from './workload.js';
