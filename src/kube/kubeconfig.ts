/**
 * Kubeconfig loading with kubectl's rules: `--kubeconfig` alone, else every file of
 * KUBECONFIG merged (missing files skipped; the first file to define a name or a
 * current-context wins), else ~/.kube/config; `--context` over current-context;
 * `-n` over the context's namespace over "default".
 *
 * Read here with `yaml` rather than through @kubernetes/client-node, whose import costs
 * every command about 0.7 s; that library is loaded only for credential plugins and
 * proxies (see credentials.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { parse } from 'yaml';
import { DevboxError, errorText } from '../util/errors.js';
import { closestNames } from './suggest.js';

/** The cluster-selecting flags shared by every command. */
export interface KubeTarget {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

/** A kubeconfig entry as written (`{ name, cluster | user | context }`), paths made absolute. */
export type KubeconfigEntry = { name: string } & Record<string, unknown>;

export interface KubeCluster {
  name: string;
  /** Without a trailing slash. */
  server: string;
  /** Absolute path of `certificate-authority`. */
  caFile?: string;
  /** `certificate-authority-data`, base64. */
  caData?: string;
  tlsServerName?: string;
  insecureSkipTlsVerify: boolean;
  proxyUrl?: string;
}

export interface KubeUser {
  name: string;
  token?: string;
  /** Absolute path of `tokenFile`, read at each use (tokens rotate). */
  tokenFile?: string;
  certFile?: string;
  certData?: string;
  keyFile?: string;
  keyData?: string;
  username?: string;
  password?: string;
  /** `as` and `as-groups`: impersonation. */
  impersonate?: string;
  impersonateGroups?: string[];
  /** Set when credentials come from a plugin (`exec` or `auth-provider`). */
  plugin?: 'exec' | 'auth-provider';
}

export interface LoadedKubeConfig {
  context: string;
  namespace: string;
  cluster: KubeCluster;
  user: KubeUser;
  /** The chosen entries as written (paths absolute), for credential plugins. */
  entries: { cluster: KubeconfigEntry; user: KubeconfigEntry; context: KubeconfigEntry };
  /** Files read, in order. */
  files: string[];
}

/** The kubeconfig files kubectl would read. */
export function kubeconfigFiles(target: KubeTarget, env: NodeJS.ProcessEnv = process.env): string[] {
  if (target.kubeconfig) {
    if (!existsSync(target.kubeconfig)) {
      throw new DevboxError('BAD_INPUT', `kubeconfig ${target.kubeconfig} does not exist`, {
        hint: 'check --kubeconfig',
      });
    }
    return [target.kubeconfig];
  }
  if (env.KUBECONFIG) {
    return [...new Set(env.KUBECONFIG.split(delimiter).filter((f) => f !== ''))].filter((f) => existsSync(f));
  }
  const home = env.HOME ?? homedir();
  const file = join(home, '.kube', 'config');
  return existsSync(file) ? [file] : [];
}

interface KubeconfigFile {
  currentContext?: string;
  clusters: KubeconfigEntry[];
  users: KubeconfigEntry[];
  contexts: KubeconfigEntry[];
}

const PATH_KEYS: Record<string, string[]> = {
  cluster: ['certificate-authority'],
  user: ['client-certificate', 'client-key', 'tokenFile'],
};

function readKubeconfigFile(file: string): KubeconfigFile {
  let doc: unknown;
  try {
    doc = parse(readFileSync(file, 'utf8')) ?? {};
  } catch (err) {
    throw new DevboxError('BAD_INPUT', `cannot read kubeconfig ${file}: ${errorText(err)}`, { cause: err });
  }
  if (!isObject(doc))
    throw new DevboxError('BAD_INPUT', `cannot read kubeconfig ${file}: not a YAML mapping`);
  // Entries without a name or body are skipped, as kubectl does, so that one broken entry does not hide the rest.
  const entries = (key: 'clusters' | 'users' | 'contexts', body: string): KubeconfigEntry[] =>
    (Array.isArray(doc[key]) ? doc[key] : [])
      .filter(
        (e): e is KubeconfigEntry =>
          isObject(e) && typeof e.name === 'string' && e.name !== '' && isObject(e[body]),
      )
      .map((e) => ({
        ...e,
        [body]: absolutePaths(e[body] as Record<string, unknown>, PATH_KEYS[body], file),
      }));
  const current = doc['current-context'];
  return {
    currentContext: typeof current === 'string' && current !== '' ? current : undefined,
    clusters: entries('clusters', 'cluster').filter((e) => typeof body(e, 'cluster').server === 'string'),
    users: entries('users', 'user'),
    contexts: entries('contexts', 'context'),
  };
}

function absolutePaths(
  body: Record<string, unknown>,
  keys: string[] | undefined,
  file: string,
): Record<string, unknown> {
  const out = { ...body };
  for (const key of keys ?? []) {
    const value = out[key];
    if (typeof value === 'string' && value !== '' && !isAbsolute(value))
      out[key] = join(dirname(file), value);
  }
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function body(entry: KubeconfigEntry, key: string): Record<string, unknown> {
  return (entry[key] as Record<string, unknown> | undefined) ?? {};
}

function str(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function firstByName(lists: KubeconfigEntry[][]): Map<string, KubeconfigEntry> {
  const out = new Map<string, KubeconfigEntry>();
  for (const list of lists) for (const item of list) if (!out.has(item.name)) out.set(item.name, item);
  return out;
}

function toCluster(entry: KubeconfigEntry): KubeCluster {
  const c = body(entry, 'cluster');
  return {
    name: entry.name,
    server: String(c.server).replace(/\/+$/, ''),
    caFile: str(c['certificate-authority']),
    caData: str(c['certificate-authority-data']),
    tlsServerName: str(c['tls-server-name']),
    insecureSkipTlsVerify: c['insecure-skip-tls-verify'] === true,
    proxyUrl: str(c['proxy-url']),
  };
}

function toUser(entry: KubeconfigEntry): KubeUser {
  const u = body(entry, 'user');
  const groups = Array.isArray(u['as-groups']) ? u['as-groups'].filter((g) => typeof g === 'string') : [];
  return {
    name: entry.name,
    token: str(u.token),
    tokenFile: str(u.tokenFile),
    certFile: str(u['client-certificate']),
    certData: str(u['client-certificate-data']),
    keyFile: str(u['client-key']),
    keyData: str(u['client-key-data']),
    username: str(u.username),
    password: str(u.password),
    impersonate: str(u.as),
    impersonateGroups: groups.length ? groups : undefined,
    plugin: isObject(u.exec) ? 'exec' : isObject(u['auth-provider']) ? 'auth-provider' : undefined,
  };
}

/** Loads the kubeconfig for `target`; errors name the flag to change. */
export function loadKubeConfig(
  target: KubeTarget = {},
  env: NodeJS.ProcessEnv = process.env,
): LoadedKubeConfig {
  const files = kubeconfigFiles(target, env);
  if (files.length === 0) {
    throw new DevboxError('NO_CLUSTER', 'no kubeconfig found', {
      hint: env.KUBECONFIG
        ? `none of the files in KUBECONFIG exist (${env.KUBECONFIG})`
        : 'pass --kubeconfig or set KUBECONFIG',
    });
  }
  const configs = files.map(readKubeconfigFile);
  const contexts = firstByName(configs.map((c) => c.contexts));
  const clusters = firstByName(configs.map((c) => c.clusters));
  const users = firstByName(configs.map((c) => c.users));
  const current = configs.map((c) => c.currentContext).find((c) => c);

  const name = target.context ?? current;
  const known = [...contexts.keys()];
  if (!name) {
    throw new DevboxError('BAD_INPUT', 'the kubeconfig has no current context', {
      hint: known.length ? `pass --context (${known.join(', ')})` : `no contexts in ${files.join(', ')}`,
    });
  }
  const context = contexts.get(name);
  if (!context) {
    const near = closestNames(name, known);
    throw new DevboxError('NOT_FOUND', `context "${name}" not found in ${files.join(', ')}`, {
      hint: near.length
        ? `did you mean ${near.join(', ')}?`
        : known.length
          ? `contexts: ${known.join(', ')}`
          : undefined,
    });
  }
  const { cluster: clusterName, user: userName, namespace } = body(context, 'context');
  const cluster = clusters.get(String(clusterName));
  if (!cluster)
    throw new DevboxError(
      'BAD_INPUT',
      `context "${name}" refers to cluster "${String(clusterName)}", which is not defined`,
    );
  const user = users.get(String(userName)) ?? { name: String(userName ?? ''), user: {} };
  return {
    context: name,
    namespace: target.namespace || str(namespace) || 'default',
    cluster: toCluster(cluster),
    user: toUser(user),
    entries: { cluster, user, context },
    files,
  };
}
