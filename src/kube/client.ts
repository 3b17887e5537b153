/**
 * The small Kubernetes API surface devbox uses, behind an interface it owns.
 *
 * Credentials come from the kubeconfig (credentials.ts; plugins and proxies through
 * @kubernetes/client-node), but requests are plain JSON over
 * node:http(s): the generated typed clients drop fields their models do not know and
 * turn timestamps into Dates, which would break restoring objects byte for byte, and
 * their `patch*` calls default to JSON-patch. Every write names `devbox` as field manager.
 */
import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
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
  apiError,
  credentialError,
  KubeApiError,
  type RequestContext,
  transportError,
} from './api/errors.js';
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

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface WatchEvent<T> {
  type: WatchEventType;
  object: T;
}

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
    options?: { expirationSeconds?: number; audiences?: string[] },
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

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  /** Default 30 s. */
  timeoutMs?: number;
}

export interface KubeClientOptions extends KubeTarget {
  /** Used instead of reading kubeconfig files (tests, in-process callers). */
  loaded?: LoadedKubeConfig;
}

/** A client for the cluster `options` select (kubectl semantics for the flags). */
export function createKubeClient(options: KubeClientOptions = {}): KubeClient {
  return new HttpKubeClient(options.loaded ?? loadKubeConfig(options));
}

const retryableStatus = new Set([429, 502, 503, 504]);

/** JSON for API objects; plain text for the few endpoints that answer with it (pod logs). */
function parseBody(text: string): unknown {
  if (!text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

class HttpKubeClient implements KubeClient {
  readonly namespace: string;
  readonly cluster: ClusterInfo;
  private readonly loaded: LoadedKubeConfig;
  private readonly base: URL;
  private agent: http.Agent | undefined;

  constructor(loaded: LoadedKubeConfig) {
    this.loaded = loaded;
    this.namespace = loaded.namespace;
    const c = loaded.cluster;
    this.base = new URL(c.server);
    this.cluster = {
      context: loaded.context,
      server: c.server,
      caPem: readCaPem(loaded),
      tlsServerName: c.tlsServerName,
      insecureSkipTlsVerify: c.insecureSkipTlsVerify,
    };
  }

  async httpsOptions(): Promise<https.RequestOptions> {
    try {
      return await credentialOptions(this.loaded);
    } catch (err) {
      throw credentialError(err, this.loaded.context);
    }
  }

  /** A keep-alive agent with the kubeconfig's TLS material (client-node's has no keep-alive). */
  private agentFor(opts: https.RequestOptions): http.Agent {
    if (this.loaded.cluster.proxyUrl) return opts.agent as http.Agent;
    if (!this.agent) {
      const tls = {
        ca: opts.ca,
        cert: opts.cert,
        key: opts.key,
        pfx: opts.pfx,
        passphrase: opts.passphrase,
        servername: opts.servername,
        rejectUnauthorized: opts.rejectUnauthorized,
      };
      this.agent =
        this.base.protocol === 'http:'
          ? new http.Agent({ keepAlive: true, maxSockets: 16 })
          : new https.Agent({ keepAlive: true, maxSockets: 16, ...tls });
    }
    return this.agent;
  }

  private url(path: string, query?: RequestOptions['query']): URL {
    const url = new URL(this.base.toString());
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`;
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  private ctx(method: string, path: string): RequestContext {
    return { server: this.cluster.server, context: this.cluster.context, method, path };
  }

  /** Opens a request and resolves with the response once headers arrive. */
  private async open(
    method: string,
    path: string,
    options: RequestOptions,
    timeoutMs: number,
  ): Promise<http.IncomingMessage> {
    const auth = await this.httpsOptions();
    const url = this.url(path, options.query);
    const body =
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body);
    const headers: http.OutgoingHttpHeaders = {
      ...((auth.headers ?? {}) as http.OutgoingHttpHeaders),
      Accept: 'application/json',
    };
    if (body !== undefined) {
      headers['Content-Type'] = options.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const transport = url.protocol === 'http:' ? http : https;
    log.debug('request', { method, url: url.toString() });
    return new Promise((resolve, reject) => {
      const req = transport.request(url, {
        method,
        headers,
        agent: this.agentFor(auth),
        auth: auth.auth,
        signal: options.signal,
      });
      req.setTimeout(timeoutMs, () =>
        req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })),
      );
      req.on('response', resolve);
      req.on('error', (err) =>
        reject(options.signal?.aborted ? options.signal.reason : transportError(err, this.ctx(method, path))),
      );
      req.end(body);
    });
  }

  async request(method: string, path: string, options: RequestOptions = {}): Promise<unknown> {
    const idempotent = method === 'GET';
    for (let attempt = 1; ; attempt++) {
      let status: number;
      let text: string;
      let retryAfter: string | undefined;
      try {
        const res = await this.open(method, path, options, options.timeoutMs ?? 30_000);
        status = res.statusCode ?? 0;
        retryAfter = res.headers['retry-after'] as string | undefined;
        text = await readBody(res);
      } catch (err) {
        const transient =
          err instanceof DevboxError && err.code === 'NO_CLUSTER' && /ECONNRESET|EPIPE/.test(err.message);
        if (idempotent && transient && attempt < 3) {
          await sleep(200 * attempt, undefined, { signal: options.signal });
          continue;
        }
        throw err;
      }
      if (status >= 200 && status < 300) return parseBody(text);
      if (idempotent && retryableStatus.has(status) && attempt < 3) {
        const wait = Math.min(Number(retryAfter) * 1000 || 300 * attempt, 5000);
        await sleep(wait, undefined, { signal: options.signal });
        continue;
      }
      throw apiError(status, text, this.ctx(method, path));
    }
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
    const items: KindTypes[K][] = [];
    let resourceVersion = '';
    let continueToken: string | undefined;
    do {
      const page = (await this.request('GET', resourcePath(kind, namespace), {
        query: {
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
          limit: 500,
          continue: continueToken,
        },
      })) as { items?: KindTypes[K][]; metadata?: { resourceVersion?: string; continue?: string } };
      for (const item of page.items ?? []) items.push({ apiVersion: apiVersionOf(kind), kind, ...item });
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      continueToken = page.metadata?.continue || undefined;
    } while (continueToken);
    return { items, resourceVersion };
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
    type T = KindTypes[K];
    const known = new Map<string, T>();
    const deliver = (event: WatchEvent<T>) => {
      try {
        onEvent(event);
      } catch (err) {
        throw new CallbackError(err);
      }
    };
    const keyOf = (o: T) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;
    const relist = async (): Promise<string> => {
      const { items, resourceVersion } = await this.list(kind, namespace, options);
      const seen = new Set<string>();
      for (const item of items) {
        const key = keyOf(item);
        seen.add(key);
        const before = known.get(key);
        known.set(key, item);
        if (!before) deliver({ type: 'ADDED', object: item });
        else if (before.metadata?.resourceVersion !== item.metadata?.resourceVersion)
          deliver({ type: 'MODIFIED', object: item });
      }
      for (const [key, obj] of [...known]) {
        if (seen.has(key)) continue;
        known.delete(key);
        deliver({ type: 'DELETED', object: obj });
      }
      try {
        options.onSynced?.();
      } catch (err) {
        throw new CallbackError(err);
      }
      return resourceVersion;
    };

    let rv: string;
    try {
      rv = await relist();
    } catch (err) {
      throw err instanceof CallbackError ? err.cause : err;
    }
    let failures = 0;
    const maxFailures = options.maxFailures ?? 5;
    while (!signal.aborted) {
      try {
        const outcome = await this.watchOnce<T>(kind, namespace, rv, options, signal, (type, object) => {
          rv = object.metadata?.resourceVersion ?? rv;
          if (type === 'BOOKMARK') return;
          const key = keyOf(object);
          if (type === 'DELETED') known.delete(key);
          else known.set(key, object);
          deliver({ type, object });
        });
        failures = 0;
        if (outcome === 'gone') rv = await relist();
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof CallbackError) throw err.cause;
        if (err instanceof KubeApiError && [401, 403, 404].includes(err.status)) throw err;
        if (err instanceof KubeApiError && err.status === 410) {
          rv = await relist();
          continue;
        }
        failures++;
        log.debug('watch failed', { kind, failures, error: String(err) });
        if (failures >= maxFailures) throw err;
        await sleep(Math.min(250 * 2 ** failures, 5000), undefined, { signal }).catch(() => undefined);
      }
    }
  }

  /** One watch request; resolves 'ended' when the server closes it, 'gone' on 410. */
  private async watchOnce<T>(
    kind: Kind,
    namespace: string,
    resourceVersion: string,
    options: WatchOptions,
    signal: AbortSignal,
    emit: (type: WatchEventType | 'BOOKMARK', object: T) => void,
  ): Promise<'ended' | 'gone'> {
    const path = resourcePath(kind, namespace);
    const res = await this.open(
      'GET',
      path,
      {
        signal,
        query: {
          watch: 1,
          resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds: options.timeoutSeconds ?? 300,
          labelSelector: options.labelSelector,
          fieldSelector: options.fieldSelector,
        },
      },
      options.idleTimeoutMs ?? 120_000,
    );
    if ((res.statusCode ?? 0) >= 300)
      throw apiError(res.statusCode ?? 0, await readBody(res), this.ctx('GET', path));
    res.setEncoding('utf8');
    let buffered = '';
    try {
      for await (const chunk of res as AsyncIterable<string>) {
        buffered += chunk;
        let nl = buffered.indexOf('\n');
        while (nl >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          nl = buffered.indexOf('\n');
          if (!line) continue;
          const event = JSON.parse(line) as { type: string; object: unknown };
          if (event.type === 'ERROR') {
            const status = event.object as { code?: number; message?: string; reason?: string };
            if (status.code === 410) return 'gone';
            throw apiError(status.code ?? 500, JSON.stringify(status), this.ctx('GET', path));
          }
          emit(event.type as WatchEventType | 'BOOKMARK', event.object as T);
        }
      }
    } finally {
      res.destroy();
    }
    return 'ended';
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
    options: { expirationSeconds?: number; audiences?: string[] } = {},
  ): Promise<MintedToken> {
    const body = {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: options.audiences ?? [], expirationSeconds: options.expirationSeconds ?? 3600 },
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
    this.agent?.destroy();
    this.agent = undefined;
  }
}

/** Wraps an error thrown by a watch callback, so it is not mistaken for a transport failure. */
class CallbackError extends Error {
  constructor(cause: unknown) {
    super('watch callback failed', { cause });
  }
}

async function readBody(res: http.IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res as AsyncIterable<string>) text += chunk;
  return text;
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
