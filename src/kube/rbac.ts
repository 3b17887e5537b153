/**
 * The permissions devbox needs, in one place: the developer Role in
 * templates/rbac/devbox-developer-role.yaml is this list (a unit test holds them
 * equal), and `devbox up` checks the same list with SelfSubjectAccessReviews before
 * touching anything.
 *
 * Everything is namespaced. The sidecar's Role is a subset of the developer's, so
 * minting its tokens (serviceaccounts/token, limited to that one account) grants a
 * developer nothing new. The sidecar's account, Role and RoleBinding are installed by
 * an administrator with the template; devbox never creates or reads RBAC objects, so
 * the developer Role grants nothing on them.
 */

export type DevboxCommand = 'up' | 'down' | 'clean' | 'env' | 'share';

/** One verb on one resource, and why devbox needs it. */
export interface Permission {
  group: string;
  /** Resource, with `/subresource` when there is one. */
  resource: string;
  verb: string;
  /** Limits the grant to these object names. */
  names?: string[];
  commands: DevboxCommand[];
  why: string;
}

/** An RBAC PolicyRule, as written in a Role. */
export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

export const DEVELOPER_ROLE = 'devbox-developer';
export const SIDECAR_ACCOUNT = 'devbox-sidecar';

const all: DevboxCommand[] = ['up', 'down', 'clean'];

/** What `devbox up`, `down`, `clean`, `env` and `share` do with the API. */
export const DEVELOPER_PERMISSIONS: readonly Permission[] = [
  {
    group: 'apps',
    resource: 'deployments',
    verb: 'get',
    commands: [...all, 'env'],
    why: 'read the workload',
  },
  {
    group: 'apps',
    resource: 'deployments',
    verb: 'list',
    commands: ['up', 'clean', 'env'],
    why: 'suggest names, find sessions',
  },
  {
    group: 'apps',
    resource: 'deployments',
    verb: 'watch',
    commands: ['up', 'down'],
    why: 'wait for the rollout',
  },
  { group: 'apps', resource: 'deployments', verb: 'update', commands: all, why: 'add and remove the agent' },
  {
    group: 'apps',
    resource: 'statefulsets',
    verb: 'get',
    commands: [...all, 'env'],
    why: 'read the workload',
  },
  {
    group: 'apps',
    resource: 'statefulsets',
    verb: 'list',
    commands: ['up', 'clean', 'env'],
    why: 'suggest names, find sessions',
  },
  {
    group: 'apps',
    resource: 'statefulsets',
    verb: 'watch',
    commands: ['up', 'down'],
    why: 'wait for the rollout',
  },
  { group: 'apps', resource: 'statefulsets', verb: 'update', commands: all, why: 'add and remove the agent' },
  { group: '', resource: 'services', verb: 'get', commands: all, why: 'read Services to retarget' },
  {
    group: '',
    resource: 'services',
    verb: 'list',
    commands: [...all, 'env'],
    why: 'Services of the workload, service-link env',
  },
  { group: '', resource: 'services', verb: 'watch', commands: ['up'], why: 'follow Services while running' },
  {
    group: '',
    resource: 'services',
    verb: 'update',
    commands: all,
    why: 'point targetPort at the agent and back',
  },
  {
    group: 'discovery.k8s.io',
    resource: 'endpointslices',
    verb: 'list',
    commands: ['up'],
    why: 'pod IPs of headless Services',
  },
  {
    group: 'discovery.k8s.io',
    resource: 'endpointslices',
    verb: 'watch',
    commands: ['up'],
    why: 'pod IPs of headless Services',
  },
  {
    group: 'networking.k8s.io',
    resource: 'ingresses',
    verb: 'list',
    commands: ['share'],
    why: "the Ingress a share link's browser comes in through",
  },
  {
    group: '',
    resource: 'pods',
    verb: 'get',
    commands: ['up', 'env'],
    why: 'fieldRef values of a running pod',
  },
  {
    group: '',
    resource: 'pods',
    verb: 'list',
    commands: ['up', 'down', 'env'],
    why: 'find the workload pods',
  },
  { group: '', resource: 'pods', verb: 'watch', commands: ['up', 'down'], why: 'wait for agent pods' },
  {
    group: '',
    resource: 'pods',
    verb: 'delete',
    commands: ['up', 'down'],
    why: 'roll StatefulSets with the OnDelete strategy',
  },
  { group: '', resource: 'pods/log', verb: 'get', commands: ['up'], why: 'show why an agent does not start' },
  // WebSocket port-forward is authorized as `create` since 1.35 and as `get` before.
  { group: '', resource: 'pods/portforward', verb: 'get', commands: ['up'], why: 'reach the agent' },
  { group: '', resource: 'pods/portforward', verb: 'create', commands: ['up'], why: 'reach the agent' },
  { group: '', resource: 'configmaps', verb: 'get', commands: ['up', 'env'], why: 'env and volumes' },
  {
    group: '',
    resource: 'configmaps',
    verb: 'list',
    commands: ['clean'],
    why: 'agent bundles left without a session',
  },
  { group: '', resource: 'configmaps', verb: 'create', commands: ['up'], why: 'the agent bundle' },
  { group: '', resource: 'configmaps', verb: 'update', commands: ['up'], why: 'the agent bundle' },
  { group: '', resource: 'configmaps', verb: 'delete', commands: all, why: 'the agent bundle' },
  { group: '', resource: 'secrets', verb: 'get', commands: ['up', 'env'], why: 'env and volumes' },
  { group: '', resource: 'secrets', verb: 'create', commands: ['up'], why: 'the agent token' },
  { group: '', resource: 'secrets', verb: 'update', commands: ['up'], why: 'the agent token' },
  { group: '', resource: 'secrets', verb: 'delete', commands: all, why: 'the agent token' },
  {
    group: '',
    resource: 'serviceaccounts/token',
    verb: 'create',
    names: [SIDECAR_ACCOUNT],
    commands: ['up'],
    why: 'short-lived credentials for the sidecar',
  },
  { group: '', resource: 'events', verb: 'list', commands: ['up'], why: 'explain pods that do not start' },
  {
    group: 'networking.k8s.io',
    resource: 'networkpolicies',
    verb: 'list',
    commands: ['up'],
    why: 'policies that would drop the traffic moved to the agent',
  },
  {
    group: 'coordination.k8s.io',
    resource: 'leases',
    verb: 'get',
    commands: ['up', 'clean'],
    why: 'tell live sessions from dead ones',
  },
  {
    group: 'coordination.k8s.io',
    resource: 'leases',
    verb: 'list',
    commands: ['clean'],
    why: 'leases of sessions that ended',
  },
  {
    group: 'coordination.k8s.io',
    resource: 'leases',
    verb: 'create',
    commands: ['up'],
    why: "the session's lease",
  },
  {
    group: 'coordination.k8s.io',
    resource: 'leases',
    verb: 'patch',
    commands: ['up'],
    why: "renew the session's lease",
  },
  {
    group: 'coordination.k8s.io',
    resource: 'leases',
    verb: 'delete',
    commands: all,
    why: "end the session's lease",
  },
];

/** What the sidecar does with its minted token. */
export const SIDECAR_PERMISSIONS: readonly Permission[] = [
  { group: '', resource: 'pods/portforward', verb: 'get', commands: ['up'], why: 'the tunnel' },
  { group: '', resource: 'pods/portforward', verb: 'create', commands: ['up'], why: 'the tunnel' },
  { group: '', resource: 'pods', verb: 'get', commands: ['up'], why: 'follow the agent pod' },
  { group: '', resource: 'pods', verb: 'list', commands: ['up'], why: 'follow the agent pod' },
  { group: '', resource: 'pods', verb: 'watch', commands: ['up'], why: 'follow the agent pod' },
  { group: '', resource: 'services', verb: 'list', commands: ['up'], why: 'ClusterIPs to listen on' },
  { group: '', resource: 'services', verb: 'watch', commands: ['up'], why: 'ClusterIPs to listen on' },
  {
    group: 'discovery.k8s.io',
    resource: 'endpointslices',
    verb: 'list',
    commands: ['up'],
    why: 'pod IPs of headless Services',
  },
  {
    group: 'discovery.k8s.io',
    resource: 'endpointslices',
    verb: 'watch',
    commands: ['up'],
    why: 'pod IPs of headless Services',
  },
  {
    group: 'coordination.k8s.io',
    resource: 'leases',
    verb: 'patch',
    commands: ['up'],
    why: "renew the session's lease while it lives",
  },
  {
    group: '',
    resource: 'serviceaccounts/token',
    verb: 'create',
    names: [SIDECAR_ACCOUNT],
    commands: ['up'],
    why: 'renew its own token, bound to the session, before it expires',
  },
];

/**
 * What the sidecar needs to listen on the Services of other namespaces as well: an administrator
 * binds the ClusterRole {@link SIDECAR_DISCOVERY_ROLE} to a namespace's sidecar account, cluster-wide
 * or in the namespaces to reach (templates/rbac/devbox-sidecar-discovery.yaml).
 */
export const SIDECAR_DISCOVERY_PERMISSIONS: readonly Permission[] = SIDECAR_PERMISSIONS.filter(
  (p) => p.resource === 'services' || p.resource === 'endpointslices',
);

export const SIDECAR_DISCOVERY_ROLE = 'devbox-sidecar-discovery';

/** The ClusterRole of templates/rbac/devbox-sidecar-discovery.yaml. */
export function sidecarDiscoveryRole(): Record<string, unknown> {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: SIDECAR_DISCOVERY_ROLE, labels: { 'app.kubernetes.io/part-of': 'devbox' } },
    rules: rulesFor(SIDECAR_DISCOVERY_PERMISSIONS),
  };
}

/** Groups permissions into Role rules: one rule per group, resource and name list, verbs in list order. */
export function rulesFor(permissions: readonly Permission[]): PolicyRule[] {
  const rules = new Map<string, PolicyRule>();
  for (const p of permissions) {
    const key = JSON.stringify([p.group, p.resource, p.names ?? null]);
    let rule = rules.get(key);
    if (!rule) {
      rule = { apiGroups: [p.group], resources: [p.resource], verbs: [] };
      if (p.names) rule.resourceNames = [...p.names];
      rules.set(key, rule);
    }
    if (!rule.verbs.includes(p.verb)) rule.verbs.push(p.verb);
  }
  return [...rules.values()];
}

/** The permissions a command needs. */
export function permissionsFor(command: DevboxCommand): Permission[] {
  return DEVELOPER_PERMISSIONS.filter((p) => p.commands.includes(command));
}

/** "update deployments.apps", "create serviceaccounts/token devbox-sidecar". */
export function describePermission(p: Pick<Permission, 'group' | 'resource' | 'verb' | 'names'>): string {
  const [resource, sub] = p.resource.split('/');
  const qualified = `${resource}${p.group ? `.${p.group}` : ''}${sub ? `/${sub}` : ''}`;
  return `${p.verb} ${qualified}${p.names?.length ? ` ${p.names.join(',')}` : ''}`;
}

type Manifest = Record<string, unknown>;

/**
 * The objects of templates/rbac/devbox-developer-role.yaml: the developer Role, and
 * the sidecar's ServiceAccount, Role and RoleBinding.
 */
export function rbacManifests(): Manifest[] {
  const labels = { 'app.kubernetes.io/part-of': 'devbox' };
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: DEVELOPER_ROLE, labels },
      rules: rulesFor(DEVELOPER_PERMISSIONS),
    },
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: SIDECAR_ACCOUNT, labels },
      automountServiceAccountToken: false,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: SIDECAR_ACCOUNT, labels },
      rules: rulesFor(SIDECAR_PERMISSIONS),
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: SIDECAR_ACCOUNT, labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: SIDECAR_ACCOUNT },
      subjects: [{ kind: 'ServiceAccount', name: SIDECAR_ACCOUNT }],
    },
  ];
}
