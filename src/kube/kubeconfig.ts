/**
 * Kubeconfig loading with kubectl's rules: `--kubeconfig` alone, else every file of
 * KUBECONFIG merged (missing files skipped; the first file to define a name or a
 * current-context wins), else ~/.kube/config; `--context` over current-context;
 * `-n` over the context's namespace over "default".
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { type Cluster, type Context, KubeConfig, type User } from '@kubernetes/client-node';
import { DevboxError, errorText } from '../util/errors.js';
import { closestNames } from './suggest.js';

/** The cluster-selecting flags shared by every command. */
export interface KubeTarget {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

export interface LoadedKubeConfig {
  /** Holds only the chosen context's cluster and user, as current context. */
  kubeConfig: KubeConfig;
  context: string;
  namespace: string;
  cluster: Cluster;
  user: User;
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

function readFile(file: string): KubeConfig {
  const kc = new KubeConfig();
  try {
    // Skips malformed entries so that one broken context does not hide the others.
    kc.loadFromFile(file, { onInvalidEntry: 'filter' });
  } catch (err) {
    throw new DevboxError('BAD_INPUT', `cannot read kubeconfig ${file}: ${errorText(err)}`, { cause: err });
  }
  return kc;
}

function firstByName<T extends { name: string }>(lists: T[][]): Map<string, T> {
  const out = new Map<string, T>();
  for (const list of lists) for (const item of list) if (!out.has(item.name)) out.set(item.name, item);
  return out;
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
  const configs = files.map(readFile);
  const contexts = firstByName<Context>(configs.map((c) => c.contexts ?? []));
  const clusters = firstByName<Cluster>(configs.map((c) => c.clusters ?? []));
  const users = firstByName<User>(configs.map((c) => c.users ?? []));
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
  const cluster = clusters.get(context.cluster);
  if (!cluster)
    throw new DevboxError(
      'BAD_INPUT',
      `context "${name}" refers to cluster "${context.cluster}", which is not defined`,
    );
  const user = users.get(context.user) ?? { name: context.user };

  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [cluster],
    users: [user],
    contexts: [context],
    currentContext: name,
  });
  return {
    kubeConfig,
    context: name,
    namespace: target.namespace || context.namespace || 'default',
    cluster,
    user,
    files,
  };
}
