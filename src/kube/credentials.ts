/**
 * TLS material and authorization headers for requests to the API server, from the
 * chosen kubeconfig context. Certificates, tokens, token files, basic auth and
 * impersonation are applied here; credential plugins (`exec`, `auth-provider`) and
 * `proxy-url` go through @kubernetes/client-node, imported only for them.
 */
import { readFileSync } from 'node:fs';
import type https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { LoadedKubeConfig } from './kubeconfig.js';

/** Request options carrying the context's credentials; reads token files and runs plugins on every call. */
export async function credentialOptions(loaded: LoadedKubeConfig): Promise<https.RequestOptions> {
  const { cluster, user } = loaded;
  if (user.plugin || cluster.proxyUrl) {
    const opts: https.RequestOptions = {};
    await (await pluginConfig(loaded)).applyToHTTPSOptions(opts);
    return opts;
  }
  const headers: Record<string, string | string[]> = {};
  const opts: https.RequestOptions = { headers };
  if (cluster.insecureSkipTlsVerify) opts.rejectUnauthorized = false;
  if (cluster.tlsServerName) opts.servername = cluster.tlsServerName;
  const ca = readOnce(loaded, 'ca', cluster.caFile, cluster.caData);
  const cert = readOnce(loaded, 'cert', user.certFile, user.certData);
  const key = readOnce(loaded, 'key', user.keyFile, user.keyData);
  if (ca) opts.ca = ca;
  if (cert) opts.cert = cert;
  if (key) opts.key = key;
  const token = user.token ?? (user.tokenFile ? readFileSync(user.tokenFile, 'utf8').trim() : undefined);
  if (token) headers.Authorization = `Bearer ${token}`;
  else if (user.username !== undefined) {
    const basic = Buffer.from(`${user.username}:${user.password ?? ''}`).toString('base64');
    headers.Authorization = `Basic ${basic}`;
  }
  if (user.impersonate) headers['Impersonate-User'] = user.impersonate;
  if (user.impersonateGroups) headers['Impersonate-Group'] = user.impersonateGroups;
  return opts;
}

/** The cluster's CA in PEM, from the file or the inline data (undefined: the system's CAs). */
export function clusterCaPem(loaded: LoadedKubeConfig): string | undefined {
  return readOnce(loaded, 'ca', loaded.cluster.caFile, loaded.cluster.caData)?.toString('utf8');
}

/**
 * TLS material is read once per context, not per request: the keep-alive agent holds the first
 * read anyway. Token files are read at each use instead, because tokens rotate.
 */
const tlsMaterial = new WeakMap<LoadedKubeConfig, Map<string, Buffer | undefined>>();

function readOnce(
  loaded: LoadedKubeConfig,
  what: 'ca' | 'cert' | 'key',
  file: string | undefined,
  data: string | undefined,
): Buffer | undefined {
  const read = tlsMaterial.get(loaded) ?? new Map<string, Buffer | undefined>();
  tlsMaterial.set(loaded, read);
  if (!read.has(what))
    read.set(what, file ? readFileSync(file) : data ? Buffer.from(data, 'base64') : undefined);
  return read.get(what);
}

/** One client-node KubeConfig per loaded context: it caches plugin tokens until they expire. */
const pluginConfigs = new WeakMap<LoadedKubeConfig, Promise<KubeConfig>>();

function pluginConfig(loaded: LoadedKubeConfig): Promise<KubeConfig> {
  let config = pluginConfigs.get(loaded);
  if (!config) {
    config = import('@kubernetes/client-node').then(({ KubeConfig }) => {
      const kc = new KubeConfig();
      // JSON is YAML: the chosen entries exactly as written, with their paths already absolute.
      kc.loadFromString(
        JSON.stringify({
          apiVersion: 'v1',
          kind: 'Config',
          clusters: [loaded.entries.cluster],
          users: [loaded.entries.user],
          contexts: [{ ...loaded.entries.context, name: loaded.context }],
          'current-context': loaded.context,
        }),
      );
      return kc;
    });
    pluginConfigs.set(loaded, config);
  }
  return config;
}
