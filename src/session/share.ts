/**
 * `devbox share`: a link that pins a teammate's browser to a personal session. The session's own
 * sidecar makes the link's key and hands it, with the session's personal key, to the agents it is
 * connected to — nowhere else — so the link dies with the session, or with `--revoke`. Here we
 * only ask the sidecar for a key and work out where a browser reaches the entry.
 */
import { createServer } from 'node:net';
import type { V1Ingress } from '@kubernetes/client-node';
import { connectDocker } from '../docker/connect.js';
import {
  type DockerClient,
  findSessions,
  SESSION_LABELS,
  type SessionSummary,
  SIDECAR_BUNDLE_PATH,
  SIDECAR_CONFIG_PATH,
} from '../docker/index.js';
import { connectCluster } from '../kube/connect.js';
import { type EntryAddress, entryAddress, shareLink } from '../kube/entry.js';
import {
  findWorkload,
  KubeApiError,
  type KubeClient,
  podTemplate,
  type Workload,
  workloadLabel,
} from '../kube/index.js';
import type { KubeTarget } from '../kube/kubeconfig.js';
import { DevboxError, type ErrorCode } from '../util/errors.js';
import type { Progress } from '../util/progress.js';

export interface ShareOptions {
  target: KubeTarget;
  workload: string;
  /** `kind/name[:port]` where browsers come in; default the workload itself. */
  entry?: string;
  /** The session's name, when the workload has several on this Docker engine. */
  name?: string;
  progress: Progress;
}

export interface ShareResult {
  link: string;
  entry: EntryAddress & { workload: string };
  session: string;
  /** ISO time; the link dies earlier when the session ends. */
  expires: string;
}

export interface RevokeResult {
  session: string;
  revoked: number;
}

export interface EntryRef {
  workload: string;
  port?: number;
}

/** Parses `--entry kind/name[:port]`. */
export function parseEntryRef(text: string): EntryRef {
  const match = /^([^:]+)(?::(\d{1,5}))?$/.exec(text.trim());
  const port = match?.[2] === undefined ? undefined : Number(match[2]);
  if (!match || (port !== undefined && (port < 1 || port > 65535))) {
    throw new DevboxError('BAD_INPUT', `invalid --entry "${text}"`, {
      hint: 'use kind/name or kind/name:port, e.g. --entry deploy/storefront:80 (the port of its Service)',
    });
  }
  return { workload: match[1]!, ...(port === undefined ? {} : { port }) };
}

/** Makes a link to the session of `workload`, on the entry's address. */
export async function share(options: ShareOptions): Promise<ShareResult> {
  return withSharedSession(options, async ({ client, docker, session, entry, entryLabel, port }) => {
    const namespace = client.namespace;
    const address = entryAddress({
      label: entryLabel,
      namespace,
      podLabels: podTemplate(entry).metadata?.labels ?? {},
      services: (await client.list('Service', namespace)).items,
      ingresses: await listIngresses(client, namespace),
      ...(port === undefined ? {} : { port }),
      localPort: await freeLocalPort(),
      kubectlFlags: kubectlFlags(options.target),
    });
    const grant = await options.progress.step('Making the link in the session', () =>
      askSidecar(docker, session, []),
    );
    return {
      link: shareLink(address.url, String(grant.key)),
      entry: { workload: entryLabel, ...address },
      session: session.id,
      expires: String(grant.expires),
    };
  });
}

/** Revokes every link to the session of `workload`. */
export async function revokeShares(options: ShareOptions): Promise<RevokeResult> {
  return withSharedSession(options, async ({ docker, session }) => {
    const answer = await askSidecar(docker, session, ['--revoke']);
    return { session: session.id, revoked: Number(answer.revoked ?? 0) };
  });
}

interface SharedSession {
  client: KubeClient;
  docker: DockerClient;
  session: SessionSummary;
  entry: Workload;
  entryLabel: string;
  port: number | undefined;
}

async function withSharedSession<T>(
  options: ShareOptions,
  body: (s: SharedSession) => Promise<T>,
): Promise<T> {
  const entryRef = options.entry === undefined ? undefined : parseEntryRef(options.entry);
  const client = await connectCluster(options.target, options.progress);
  try {
    const namespace = client.namespace;
    const workload = await findWorkload(client, options.workload, namespace);
    const label = workloadLabel(workload.kind, workload.metadata!.name!);
    const entry = entryRef ? await findWorkload(client, entryRef.workload, namespace) : workload;
    const entryLabel = workloadLabel(entry.kind, entry.metadata!.name!);
    if (entryLabel !== label) {
      throw new DevboxError(
        'BAD_INPUT',
        `the entry ${entryLabel} is not ${label}, whose session the link shares`,
        {
          hint: `share reaches browsers through the agent of the shared workload: leave --entry out or use --entry ${label}:<port>`,
        },
      );
    }
    const docker = await connectDocker(options.progress);
    const session = await findSharedSession(docker, label, namespace, options.name);
    return await body({ client, docker, session, entry, entryLabel, port: entryRef?.port });
  } finally {
    client.close();
  }
}

async function findSharedSession(
  docker: DockerClient,
  workload: string,
  namespace: string,
  name: string | undefined,
): Promise<SessionSummary> {
  const sessions = (
    await findSessions(docker, { workload, namespace, ...(name === undefined ? {} : { name }) })
  ).filter((s) => s.sidecar?.state === 'running');
  if (sessions.length === 0) {
    const named = name === undefined ? '' : ` named ${name}`;
    throw new DevboxError(
      'NOT_FOUND',
      `no running session${named} of ${workload} in ${namespace} on this Docker engine`,
      {
        hint: `start one: devbox up ${workload} -n ${namespace} --personal${name === undefined ? '' : ` --name ${name}`}`,
      },
    );
  }
  if (sessions.length > 1) {
    const names = sessions.map((s) => s.labels[SESSION_LABELS.name] ?? s.id);
    throw new DevboxError(
      'CONFLICT',
      `${workload} has ${sessions.length} sessions here: which one to share?`,
      {
        hint: `name it with --name (${names.join(', ')})`,
      },
    );
  }
  return sessions[0]!;
}

/** Runs `node sidecar.mjs share` in the session's sidecar; its errors come back as devbox errors. */
async function askSidecar(
  docker: DockerClient,
  session: SessionSummary,
  args: string[],
): Promise<Record<string, unknown>> {
  const result = await docker.exec(session.sidecar!.id, [
    'node',
    SIDECAR_BUNDLE_PATH,
    'share',
    SIDECAR_CONFIG_PATH,
    ...args,
  ]);
  let answer: Record<string, unknown>;
  try {
    answer = JSON.parse(result.stdout) as Record<string, unknown>;
  } catch {
    throw new DevboxError(
      'TUNNEL',
      `the sidecar ${session.sidecar!.name} could not make a link: ${result.stderr.trim().split('\n').at(-1) ?? ''}`,
      {
        hint: 'a session started by an older devbox cannot share: devbox down, then up again',
      },
    );
  }
  const error = answer.error as { code?: ErrorCode; message?: string; hint?: string } | undefined;
  if (error) {
    throw new DevboxError(error.code ?? 'INTERNAL', error.message ?? 'the sidecar refused', {
      ...(error.hint ? { hint: error.hint } : {}),
    });
  }
  return answer;
}

/** Ingresses that may lead to the entry; none when the user may not read them (the link then uses another way in). */
async function listIngresses(client: KubeClient, namespace: string): Promise<V1Ingress[]> {
  try {
    const list = (await client.request(
      'GET',
      `/apis/networking.k8s.io/v1/namespaces/${namespace}/ingresses`,
    )) as {
      items?: V1Ingress[];
    };
    return list.items ?? [];
  } catch (err) {
    if (err instanceof KubeApiError && (err.status === 403 || err.status === 404)) return [];
    throw err;
  }
}

function kubectlFlags(target: KubeTarget): string[] {
  return [
    ...(target.kubeconfig ? ['--kubeconfig', target.kubeconfig] : []),
    ...(target.context ? ['--context', target.context] : []),
  ];
}

/** A port free on this machine now, for the printed port-forward command. */
function freeLocalPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
