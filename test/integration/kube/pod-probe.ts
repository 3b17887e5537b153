/**
 * What a container of a real pod sees, read with `kubectl exec … node -e` (the runtime
 * image has node and no shell): its environment, and files with content, mode and owner.
 */

import { createKubeClient, type KubeClient } from '../../../src/kube/client.js';
import { loadKubeConfig } from '../../../src/kube/kubeconfig.js';
import type { PortForwardOptions } from '../../../src/tunnel/portforward.js';
import { kubeconfig, kubectl } from '../../support/cluster.js';

/** The API server and the admin credentials, as `openPortForward` takes them. */
export async function portForwardAccess(
  client: KubeClient,
): Promise<Pick<PortForwardOptions, 'server' | 'ca' | 'cert' | 'key'>> {
  const tls = await client.httpsOptions();
  return {
    server: client.cluster.server,
    ca: tls.ca as string | undefined,
    cert: tls.cert as string | undefined,
    key: tls.key as string | undefined,
  };
}

export function clusterClient(namespace: string): KubeClient {
  return createKubeClient({ loaded: loadKubeConfig({ kubeconfig, namespace }, {}) });
}

/** `process.env` of a new process in the container. */
export async function containerEnv(
  namespace: string,
  pod: string,
  container: string,
): Promise<Record<string, string>> {
  const out = await kubectl([
    '-n',
    namespace,
    'exec',
    pod,
    '-c',
    container,
    '--',
    'node',
    '-e',
    'process.stdout.write(JSON.stringify(process.env))',
  ]);
  return JSON.parse(out) as Record<string, string>;
}

/** One path as the container sees it (symlinks followed, as the app opening it does). */
export interface SeenEntry {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  /** base64, files only. */
  content?: string;
  linkname?: string;
  /** Set when the container's user may not read it (EACCES): its mode and owner are still known. */
  unreadable?: string;
}

// Walks each root and prints JSON: through symlinks as the app opens paths (the kubelet's
// `..data` internals skipped), or with lstat to see links themselves.
const walkScript = `
const fs = require('fs'), path = require('path');
const out = [];
const lstat = process.argv[2] === 'lstat';
const seen = (p) => {
  const s = lstat ? fs.lstatSync(p) : fs.statSync(p);
  const type = s.isFile() ? 'file' : s.isDirectory() ? 'directory' : s.isSymbolicLink() ? 'symlink' : 'other';
  const e = { path: p, type, mode: s.mode & 0o7777, uid: s.uid, gid: s.gid };
  try {
    if (type === 'file') e.content = fs.readFileSync(p).toString('base64');
  } catch (err) {
    e.unreadable = err.code;
  }
  if (type === 'symlink') e.linkname = fs.readlinkSync(p);
  out.push(e);
  if (type !== 'directory') return;
  let names = [];
  try {
    names = fs.readdirSync(p).sort();
  } catch (err) {
    e.unreadable = err.code;
  }
  for (const n of names) if (!n.startsWith('..')) seen(path.join(p, n));
};
for (const root of JSON.parse(process.argv[1])) { try { seen(root); } catch (err) { out.push({ path: root, error: err.code }); } }
process.stdout.write(JSON.stringify(out));
`;

/** Every path under `roots` in the container (roots included), keyed by path. */
export async function containerFiles(
  namespace: string,
  pod: string,
  container: string,
  roots: string[],
  options: { lstat?: boolean } = {},
): Promise<Map<string, SeenEntry>> {
  const args = [JSON.stringify(roots), options.lstat ? 'lstat' : 'stat'];
  const out = await kubectl(
    ['-n', namespace, 'exec', pod, '-c', container, '--', 'node', '-e', walkScript, ...args],
    { timeoutMs: 60_000 },
  );
  const entries = JSON.parse(out) as (SeenEntry & { error?: string })[];
  const missing = entries.filter((e) => e.error);
  if (missing.length)
    throw new Error(`unreadable in the pod: ${missing.map((e) => `${e.path} (${e.error})`).join(', ')}`);
  return new Map(entries.map((e) => [e.path, e]));
}

/** The claims of a JWT (not verified). */
export function jwtClaims(token: string): Record<string, unknown> {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(parts[1] as string, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Waits until the pods matching `selector` are all Ready, and returns the newest one's name. */
export async function readyPod(namespace: string, selector: string, timeoutSeconds = 120): Promise<string> {
  await kubectl(
    ['-n', namespace, 'wait', '--for=condition=Ready', 'pod', '-l', selector, `--timeout=${timeoutSeconds}s`],
    { timeoutMs: (timeoutSeconds + 10) * 1000 },
  );
  const list = JSON.parse(await kubectl(['-n', namespace, 'get', 'pods', '-l', selector, '-o', 'json'])) as {
    items: { metadata: { name: string; creationTimestamp: string; deletionTimestamp?: string } }[];
  };
  const names = list.items
    .filter((p) => !p.metadata.deletionTimestamp)
    .sort((a, b) => a.metadata.creationTimestamp.localeCompare(b.metadata.creationTimestamp))
    .map((p) => p.metadata.name);
  const name = names[names.length - 1];
  if (!name) throw new Error(`no pod matches ${selector}`);
  return name;
}
