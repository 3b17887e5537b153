/**
 * The small Kubernetes API surface the CLI uses, behind an interface it owns: typed kinds
 * on top of the access core it shares with the sidecar (kube/api: requests, list + watch,
 * errors, backoff). Credentials come from the kubeconfig (credentials.ts; plugins and
 * proxies through @kubernetes/client-node). Every write names `devbox` as field manager,
 * and patches name their content type (the generated clients default to JSON-patch).
 */
import type https from 'node:https';
import type {
  CoreV1Event,
  V1ConfigMap,
  V1Deployment,
  V1EndpointSlice,
  V1Lease,
  V1Node,
  V1Pod,
  V1Role,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1ServiceAccount,
  V1StatefulSet,
} from '@kubernetes/client-node';
import { DevboxError, errorText } from '../util/errors.js';
import { debugLogger } from '../util/log.js';
import {
  type ApiTransport,
  createApiTransport,
  credentialError,
  Informer,
  KubeApiError,
  listAll,
  type RequestOptions,
  type WatchEvent,
} from './api/index.js';
import { clusterCaPem, credentialOptions } from './credentials.js';
import { type KubeTarget, type LoadedKubeConfig, loadKubeConfig } from './kubeconfig.js';

const log = debugLogger('kube');

/** The kinds devbox reads and writes, with their JSON shapes. */
export interface KindTypes {
  Deployment: V1Deployment;
  StatefulSet: V1StatefulSet;
  Service: V1Service;
  ConfigMap: V1ConfigMap;
  Secret: V1Secret;
  Pod: V1Pod;
  ServiceAccount: V1ServiceAccount;
  Event: CoreV1Event;
  EndpointSlice: V1EndpointSlice;
  Node: V1Node;
  Role: V1Role;
  RoleBinding: V1RoleBinding;
  Lease: V1Lease;
}
export type Kind = keyof KindTypes;

interface ResourceInfo {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

export const RESOURCES: Record<Kind, ResourceInfo> = {
  Deployment: { group: 'apps', version: 'v1', plural: 'deployments', namespaced: true },
  StatefulSet: { group: 'apps', version: 'v1', plural: 'statefulsets', namespaced: true },
  Service: { group: '', version: 'v1', plural: 'services', namespaced: true },
  ConfigMap: { group: '', version: 'v1', plural: 'configmaps', namespaced: true },
  Secret: { group: '', version: 'v1', plural: 'secrets', namespaced: true },
  Pod: { group: '', version: 'v1', plural: 'pods', namespaced: true },
  ServiceAccount: { group: '', version: 'v1', plural: 'serviceaccounts', namespaced: true },
  Event: { group: '', version: 'v1', plural: 'events', namespaced: true },
  EndpointSlice: { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespaced: true },
  Node: { group: '', version: 'v1', plural: 'nodes', namespaced: false },
  Role: { group: 'rbac.authorization.k8s.io', version: 'v1', plural: 'roles', namespaced: true },
  RoleBinding: {
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    plural: 'rolebindings',
    namespaced: true,
  },
  Lease: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', namespaced: true },
};

/** `apps/v1`, `v1`. */
export function apiVersionOf(kind: Kind): string {
  const r = RESOURCES[kind];
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** The REST path of a kind, a namespace's collection, an object or its subresource. */
export function resourcePath(kind: Kind, namespace?: string, name?: string, subresource?: string): string {
  const r = RESOURCES[kind];
  let path = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  if (r.namespaced && namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
  path += `/${r.plural}`;
  if (name) path += `/${encodeURIComponent(name)}`;
  if (subresource) path += `/${subresource}`;
  return path;
}

export type PatchType = 'merge' | 'strategic' | 'json' | 'apply';

const patchContentTypes: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
}

export interface ObjectList<T> {
  items: T[];
  resourceVersion: string;
}

export type { WatchEvent, WatchEventType } from './api/index.js';

export interface WatchOptions extends ListOptions {
  /** Called after the initial list and after every relist, with the objects known then. */
  onSynced?: () => void;
  /** Server-side duration of one watch request; the watch is reopened when it ends. Default 300. */
  timeoutSeconds?: number;
  /** A watch request silent for this long is dropped and reopened (bookmarks keep it busy). Default 120 s. */
  idleTimeoutMs?: number;
  /** Consecutive failed (re)connections before giving up. Default 5. */
  maxFailures?: number;
}

export interface WaitOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  /** What is awaited, for the timeout message ("deployment/api to roll out"). */
  describe?: string;
}

/** A short-lived service account token from the TokenRequest API. */
export interface MintedToken {
  token: string;
  /** RFC 3339 expiry. */
  expiresAt: string;
}

/** One SelfSubjectAccessReview question. */
export interface AccessCheck {
  group: string;
  /** Resource, with `/subresource` when there is one. */
  resource: string;
  verb: string;
  name?: string;
}

/** Where the client talks to, for messages and for handing the cluster to the sidecar. */
export interface ClusterInfo {
  context: string;
  server: string;
  /** PEM CA bundle of the cluster, when the kubeconfig has one. */
  caPem: string | undefined;
  tlsServerName: string | undefined;
  insecureSkipTlsVerify: boolean;
}

export interface KubeClient {
  /** Namespace from `-n`, else the context's, else "default". */
  readonly namespace: string;
  readonly cluster: ClusterInfo;

  /** The object, or undefined when it does not exist. */
  get<K extends Kind>(kind: K, namespace: string, name: string): Promise<KindTypes[K] | undefined>;
  /** All objects (pages followed), each with `kind` and `apiVersion` set. `namespace` undefined lists cluster-wide. */
  list<K extends Kind>(
    kind: K,
    namespace: string | undefined,
    options?: ListOptions,
  ): Promise<ObjectList<KindTypes[K]>>;
  create<K extends Kind>(kind: K, object: KindTypes[K]): Promise<KindTypes[K]>;
  /** PUT: the object as given, with its resourceVersion as precondition (409 CONFLICT when stale). */
  replace<K extends Kind>(kind: K, object: KindTypes[K]): Promise<KindTypes[K]>;
  patch<K extends Kind>(
    kind: K,
    namespace: string,
    name: string,
    patch: unknown,
    type: PatchType,
  ): Promise<KindTypes[K]>;
  /** True when deleted, false when it did not exist. `uid` makes it a precondition. */
  delete(kind: Kind, namespace: string, name: string, options?: { uid?: string }): Promise<boolean>;
  /**
   * Follows objects until `signal` aborts: a list first (as ADDED events), then a watch
   * reopened whenever the server ends it; after 410 Gone it relists and reports the
   * differences. Rejects on a callback error, on 401/403/404, or after repeated failures.
   */
  watch<K extends Kind>(
    kind: K,
    namespace: string,
    options: WatchOptions,
    onEvent: (event: WatchEvent<KindTypes[K]>) => void,
    signal: AbortSignal,
  ): Promise<void>;
  /** Resolves with the object (or undefined if absent) once `predicate` holds; TIMEOUT otherwise. */
  waitFor<K extends Kind>(
    kind: K,
    namespace: string,
    name: string,
    predicate: (object: KindTypes[K] | undefined) => boolean,
    options: WaitOptions,
  ): Promise<KindTypes[K] | undefined>;
  /** A token for a service account (TokenRequest). */
  requestToken(
    namespace: string,
    serviceAccount: string,
    options?: TokenRequestOptions,
  ): Promise<MintedToken>;
  /** One SelfSubjectAccessReview per check, answered in order. */
  checkAccess(namespace: string, checks: readonly AccessCheck[]): Promise<boolean[]>;
  /** Raw JSON request for anything else. */
  request(method: string, path: string, options?: RequestOptions): Promise<unknown>;
  /** Auth headers and TLS options for other transports (e.g. a WebSocket port-forward). */
  httpsOptions(): Promise<https.RequestOptions>;
  /** Frees pooled connections. */
  close(): void;
}

export type { RequestOptions } from './api/index.js';

export interface TokenRequestOptions {
  expirationSeconds?: number;
  audiences?: string[];
  /** The token stays valid only while this Secret (same uid) exists: deleting it revokes the token. */
  boundSecret?: { name: string; uid: string };
}

export interface KubeClientOptions extends KubeTarget {
  /** Used instead of reading kubeconfig files (tests, in-process callers). */
  loaded?: LoadedKubeConfig;
}

/** A client for the cluster `options` select (kubectl semantics for the flags). */
export function createKubeClient(options: KubeClientOptions = {}): KubeClient {
  return new HttpKubeClient(options.loaded ?? loadKubeConfig(options));
}

class HttpKubeClient implements KubeClient {
  readonly namespace: string;
  readonly cluster: ClusterInfo;
  private readonly loaded: LoadedKubeConfig;
  private readonly api: ApiTransport;

  constructor(loaded: LoadedKubeConfig) {
    this.loaded = loaded;
    this.namespace = loaded.namespace;
    const c = loaded.cluster;
    this.cluster = {
      context: loaded.context,
      server: c.server,
      caPem: readCaPem(loaded),
      tlsServerName: c.tlsServerName,
      insecureSkipTlsVerify: c.insecureSkipTlsVerify,
    };
    this.api = createApiTransport({
      server: c.server,
      context: `context "${loaded.context}"`,
      credentials: async () => {
        const opts = await this.httpsOptions();
        // client-node's agent (no keep-alive) only when it carries the kubeconfig's proxy-url.
        return c.proxyUrl ? opts : { ...opts, agent: undefined };
      },
    });
  }

  async httpsOptions(): Promise<https.RequestOptions> {
    try {
      return await credentialOptions(this.loaded);
    } catch (err) {
      throw credentialError(err, this.loaded.context);
    }
  }

  request(method: string, path: string, options: RequestOptions = {}): Promise<unknown> {
    return this.api.request(method, path, options);
  }

  async get<K extends Kind>(kind: K, namespace: string, name: string): Promise<KindTypes[K] | undefined> {
    try {
      return (await this.request('GET', resourcePath(kind, namespace, name))) as KindTypes[K];
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  async list<K extends Kind>(
    kind: K,
    namespace: string | undefined,
    options: ListOptions = {},
  ): Promise<ObjectList<KindTypes[K]>> {
    const { items, resourceVersion } = await listAll(this.api, resourcePath(kind, namespace), {
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
    });
    return { items: items.map((item) => withKind(kind, item)), resourceVersion };
  }

  private namespaceOf(kind: Kind, object: { metadata?: { namespace?: string } }): string | undefined {
    return RESOURCES[kind].namespaced ? (object.metadata?.namespace ?? this.namespace) : undefined;
  }

  async create<K extends Kind>(kind: K, object: KindTypes[K]): Promise<KindTypes[K]> {
    const body = { apiVersion: apiVersionOf(kind), kind, ...object };
    return (await this.request('POST', resourcePath(kind, this.namespaceOf(kind, object)), {
      body,
      query: { fieldManager: 'devbox' },
    })) as KindTypes[K];
  }

  async replace<K extends Kind>(kind: K, object: KindTypes[K]): Promise<KindTypes[K]> {
    const name = object.metadata?.name;
    if (!name) throw new DevboxError('INTERNAL', `replace ${kind} without a name`);
    const body = { apiVersion: apiVersionOf(kind), kind, ...object };
    return (await this.request('PUT', resourcePath(kind, this.namespaceOf(kind, object), name), {
      body,
      query: { fieldManager: 'devbox' },
    })) as KindTypes[K];
  }

  async patch<K extends Kind>(
    kind: K,
    namespace: string,
    name: string,
    patch: unknown,
    type: PatchType,
  ): Promise<KindTypes[K]> {
    return (await this.request('PATCH', resourcePath(kind, namespace, name), {
      body: type === 'apply' && typeof patch !== 'string' ? JSON.stringify(patch) : patch,
      contentType: patchContentTypes[type],
      query: { fieldManager: 'devbox', force: type === 'apply' ? true : undefined },
    })) as KindTypes[K];
  }

  async delete(
    kind: Kind,
    namespace: string,
    name: string,
    options: { uid?: string } = {},
  ): Promise<boolean> {
    try {
      await this.request('DELETE', resourcePath(kind, namespace, name), {
        body: options.uid
          ? { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: options.uid } }
          : undefined,
      });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return false;
      throw err;
    }
  }

  async watch<K extends Kind>(
    kind: K,
    namespace: string,
    options: WatchOptions,
    onEvent: (event: WatchEvent<KindTypes[K]>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const informer: Informer<KindTypes[K]> = new Informer({
      api: this.api,
      path: resourcePath(kind, namespace),
      labelSelector: options.labelSelector,
      fieldSelector: options.fieldSelector,
      transform: (item) => withKind(kind, item),
      onEvent,
      onSynced: options.onSynced,
      watchTimeoutSeconds: options.timeoutSeconds ?? 300,
      idleTimeoutMs: options.idleTimeoutMs ?? 120_000,
      backoff: WATCH_BACKOFF,
      maxFailures: options.maxFailures ?? 5,
      fatal: (err) =>
        !informer.stats.synced || (err instanceof KubeApiError && [401, 403, 404].includes(err.status)),
      log,
    });
    await informer.run(signal);
  }

  async waitFor<K extends Kind>(
    kind: K,
    namespace: string,
    name: string,
    predicate: (object: KindTypes[K] | undefined) => boolean,
    options: WaitOptions,
  ): Promise<KindTypes[K] | undefined> {
    const controller = new AbortController();
    const onAbort = () => controller.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let current: KindTypes[K] | undefined;
    let done = false;
    const timer = setTimeout(
      () =>
        controller.abort(
          new DevboxError(
            'TIMEOUT',
            `timed out after ${Math.round(options.timeoutMs / 1000)} s waiting for ${options.describe ?? `${kind.toLowerCase()}/${name}`}`,
          ),
        ),
      options.timeoutMs,
    );
    const check = () => {
      if (!done && predicate(current)) {
        done = true;
        controller.abort();
      }
    };
    try {
      await this.watch(
        kind,
        namespace,
        { fieldSelector: `metadata.name=${name}`, onSynced: check },
        (event) => {
          current = event.type === 'DELETED' ? undefined : event.object;
          check();
        },
        controller.signal,
      );
    } catch (err) {
      if (!done) throw err;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
    }
    if (done) return current;
    throw controller.signal.reason instanceof Error
      ? controller.signal.reason
      : new DevboxError('TIMEOUT', 'wait aborted');
  }

  async requestToken(
    namespace: string,
    serviceAccount: string,
    options: TokenRequestOptions = {},
  ): Promise<MintedToken> {
    const body = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: options.audiences ?? [],
        expirationSeconds: options.expirationSeconds ?? 3600,
        ...(options.boundSecret
          ? { boundObjectRef: { apiVersion: 'v1', kind: 'Secret', ...options.boundSecret } }
          : {}),
      },
    };
    let res: { status?: { token?: string; expirationTimestamp?: string } };
    try {
      res = (await this.request('POST', resourcePath('ServiceAccount', namespace, serviceAccount, 'token'), {
        body,
      })) as typeof res;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) {
        throw new DevboxError(
          'NOT_FOUND',
          `service account "${serviceAccount}" not found in namespace "${namespace}"`,
          {
            hint: `apply templates/rbac/devbox-developer-role.yaml in namespace ${namespace} (kubectl apply -n ${namespace} -f …)`,
            cause: err,
          },
        );
      }
      throw err;
    }
    if (!res.status?.token) throw new DevboxError('PROTOCOL', 'TokenRequest answered without a token');
    return { token: res.status.token, expiresAt: res.status.expirationTimestamp ?? '' };
  }

  async checkAccess(namespace: string, checks: readonly AccessCheck[]): Promise<boolean[]> {
    const ask = async (c: AccessCheck): Promise<boolean> => {
      const [resource, subresource] = c.resource.split('/');
      const res = (await this.request('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
        body: {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SelfSubjectAccessReview',
          spec: {
            resourceAttributes: {
              namespace,
              verb: c.verb,
              group: c.group,
              resource,
              subresource,
              name: c.name,
            },
          },
        },
      })) as { status?: { allowed?: boolean } };
      return res.status?.allowed === true;
    };
    const results: boolean[] = new Array(checks.length);
    let next = 0;
    const worker = async () => {
      while (next < checks.length) {
        const i = next++;
        results[i] = await ask(checks[i] as AccessCheck);
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, checks.length) }, worker));
    return results;
  }

  close(): void {
    this.api.close();
  }
}

/** Between reconnections of a watch: the CLI gives up after a few (maxFailures). */
const WATCH_BACKOFF = { initialMs: 500, maxMs: 5000 };

/** `kind` and `apiVersion` on a listed item, as a GET of the object has them. */
function withKind<K extends Kind>(kind: K, item: object): KindTypes[K] {
  return { apiVersion: apiVersionOf(kind), kind, ...item } as KindTypes[K];
}

/** The cluster's CA, read once: the sidecar container gets it too. */
function readCaPem(loaded: LoadedKubeConfig): string | undefined {
  try {
    return clusterCaPem(loaded);
  } catch (err) {
    throw new DevboxError(
      'BAD_INPUT',
      `cannot read the certificate-authority of cluster "${loaded.cluster.name}": ${errorText(err)}`,
      { hint: `fix the kubeconfig entry (${loaded.files.join(', ')})`, cause: err },
    );
  }
}
