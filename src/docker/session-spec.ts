/**
 * What a session is made of, as pure data: the labels that let any machine
 * find it again, the container names, and the two container specs (the
 * sidecar owns the network namespace; the service joins it).
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { DevboxError } from '../util/errors.js';
import type { ContainerSpec, ContainerSummary, MountSpec, PortBinding } from './client.js';
import type { BindMount } from './host-paths.js';

/** Labels every session container carries; `devbox clean` and `devbox status` need nothing else. */
export const SESSION_LABELS = {
  session: 'devbox.session',
  role: 'devbox.role',
  workload: 'devbox.workload',
  namespace: 'devbox.namespace',
  context: 'devbox.context',
  /** The session's name on its workload (`up --name`). */
  name: 'devbox.name',
} as const;

export type SessionRole = 'sidecar' | 'service';

/** Where the sidecar's files go inside its container. */
export const SIDECAR_DIR = '/devbox';
export const SIDECAR_BUNDLE_PATH = `${SIDECAR_DIR}/sidecar.mjs`;
export const SIDECAR_CONFIG_PATH = `${SIDECAR_DIR}/config.json`;
/** The sidecar's own shutdown limit is 10 s; give it a little more before SIGKILL. */
const SIDECAR_STOP_SECONDS = 12;

/** Who a session belongs to. */
export interface SessionIdentity {
  /** Unique per `devbox up` (see `newSessionId`); the key of `findSessions`/`removeSession`. */
  id: string;
  workload: string;
  namespace: string;
  /** kube context name, when one was chosen. */
  context?: string;
  /** Its name on the workload (`up --name`): two sessions of one workload differ by it. */
  name?: string;
}

/** One file copied into a container (a key of a ConfigMap or Secret, a token, a CA). */
export interface InjectedFile {
  /** Absolute path inside the container; missing parent directories are created (root, 0755). */
  path: string;
  content: Buffer | string;
  /** Default 0o644. */
  mode?: number;
  /** Default 0 (root). */
  uid?: number;
  gid?: number;
}

/** Single files, or a tar stream whose entries are extracted relative to `/`. */
export type InjectedFiles = readonly InjectedFile[] | { tar: Readable };

export interface SidecarOptions {
  image: string;
  /** The daemon bundle (`dist/bundle/sidecar.mjs`, see `readSidecarBundle`), written to SIDECAR_BUNDLE_PATH. */
  bundle: Buffer | string;
  /** The daemon's config document, written as JSON to SIDECAR_CONFIG_PATH (root, 0600). */
  config: unknown;
  /** More files for the daemon (token or CA files referenced by the config). */
  files?: readonly InjectedFile[];
  /** Pod's DNS search list (`shop.svc.cluster.local`, …). */
  dnsSearch?: string[];
  /** e.g. `['ndots:5']`. */
  dnsOptions?: string[];
  /** `name:ip` or `name:host-gateway` (a loopback API server is reached through the host gateway). */
  extraHosts?: string[];
  /** Ports published on the host; they reach the service container, which shares this network. */
  ports?: PortBinding[];
  /** The pod's hostname; the service container inherits it. */
  hostname?: string;
  env?: Record<string, string>;
  /** Add NET_ADMIN (default true). Without it the daemon falls back to 127.x aliases. */
  netAdmin?: boolean;
  /** Replaces `node SIDECAR_BUNDLE_PATH SIDECAR_CONFIG_PATH` (stand-ins in tests). */
  cmd?: string[];
  /** Default `devbox-<workload>-sidecar`. */
  name?: string;
}

export interface ServiceOptions {
  image: string;
  entrypoint?: string[];
  cmd?: string[];
  env?: Record<string, string>;
  workingDir?: string;
  user?: string;
  /** The user's own `-v` mounts, with host paths (see `resolveBindMounts`). */
  mounts?: readonly BindMount[];
  /** The pod's volumes: ConfigMaps, Secrets, service-account token, copied before start. */
  files?: InjectedFiles;
  tty?: boolean;
  openStdin?: boolean;
  /** Run docker-init as PID 1 (reaps zombies, forwards signals). */
  init?: boolean;
  /** Default `devbox-<workload>`. */
  name?: string;
}

export interface SessionSpec {
  session: SessionIdentity;
  sidecar: SidecarOptions;
  service: ServiceOptions;
  /** Extra labels on both containers. */
  labels?: Record<string, string>;
}

/** A random session id: 12 lowercase hex digits. */
export function newSessionId(): string {
  return randomBytes(6).toString('hex');
}

/** Labels of one session container (caller's extras first, so ours win). */
export function sessionLabels(
  session: SessionIdentity,
  role: SessionRole,
  extra: Record<string, string> = {},
): Record<string, string> {
  const labels: Record<string, string> = {
    ...extra,
    [SESSION_LABELS.session]: session.id,
    [SESSION_LABELS.role]: role,
    [SESSION_LABELS.workload]: session.workload,
    [SESSION_LABELS.namespace]: session.namespace,
  };
  if (session.context) labels[SESSION_LABELS.context] = session.context;
  if (session.name) labels[SESSION_LABELS.name] = session.name;
  return labels;
}

/** `devbox-<workload>-sidecar` and `devbox-<workload>`, reduced to what Docker accepts in a name. */
export function containerNames(workload: string): { sidecar: string; service: string } {
  const base = workload
    .replace(/[^a-zA-Z0-9_.-]+/g, '-')
    .replace(/^[-_.]+|-+$/g, '')
    .slice(0, 100);
  if (!base) throw new DevboxError('BAD_INPUT', `Cannot name containers after workload "${workload}"`);
  return { sidecar: `devbox-${base}-sidecar`, service: `devbox-${base}` };
}

/** The sidecar's create spec. */
export function sidecarContainerSpec(spec: SessionSpec): ContainerSpec {
  const { sidecar } = spec;
  const out: ContainerSpec = {
    name: sidecar.name ?? containerNames(spec.session.workload).sidecar,
    image: sidecar.image,
    // A small young generation: connection churn otherwise grows the heap by tens of MB.
    cmd: sidecar.cmd ?? [
      'node',
      '--max-semi-space-size=1',
      '--expose-gc',
      SIDECAR_BUNDLE_PATH,
      SIDECAR_CONFIG_PATH,
    ],
    user: '0',
    labels: sessionLabels(spec.session, 'sidecar', spec.labels),
    // The daemon's DNS server answers on 127.0.0.1:53 for both containers.
    dns: ['127.0.0.1'],
    stopSignal: 'SIGTERM',
    stopTimeoutSeconds: SIDECAR_STOP_SECONDS,
  };
  if (sidecar.netAdmin !== false) out.capAdd = ['NET_ADMIN'];
  if (sidecar.dnsSearch?.length) out.dnsSearch = [...sidecar.dnsSearch];
  if (sidecar.dnsOptions?.length) out.dnsOptions = [...sidecar.dnsOptions];
  if (sidecar.extraHosts?.length) out.extraHosts = [...sidecar.extraHosts];
  if (sidecar.ports?.length) out.ports = sidecar.ports.map((p) => ({ ...p }));
  if (sidecar.hostname) out.hostname = sidecar.hostname;
  if (sidecar.env) out.env = { ...sidecar.env };
  return out;
}

/** The service's create spec: joins the sidecar's network, so no DNS, hostname or ports of its own. */
export function serviceContainerSpec(spec: SessionSpec, sidecarId: string): ContainerSpec {
  const { service } = spec;
  const out: ContainerSpec = {
    name: service.name ?? containerNames(spec.session.workload).service,
    image: service.image,
    labels: sessionLabels(spec.session, 'service', spec.labels),
    networkMode: `container:${sidecarId}`,
  };
  if (service.entrypoint) out.entrypoint = [...service.entrypoint];
  if (service.cmd) out.cmd = [...service.cmd];
  if (service.env) out.env = { ...service.env };
  if (service.workingDir) out.workingDir = service.workingDir;
  if (service.user !== undefined) out.user = service.user;
  if (service.tty) out.tty = true;
  if (service.openStdin) out.openStdin = true;
  if (service.init) out.init = true;
  if (service.mounts?.length) out.mounts = service.mounts.map(bindMountSpec);
  return out;
}

function bindMountSpec(mount: BindMount): MountSpec {
  return { type: 'bind', source: mount.source, target: mount.target, readOnly: Boolean(mount.readOnly) };
}

/** One container of a session, as listed. */
export interface SessionContainerSummary {
  id: string;
  name: string;
  role: string;
  image: string;
  /** created, running, exited, … */
  state: string;
  /** Docker's human status (`Up 3 minutes`). */
  status: string;
  created: Date;
}

/** A session found from container labels alone. */
export interface SessionSummary {
  id: string;
  workload: string;
  namespace: string;
  context?: string;
  /** The session's name on its workload (none on containers of earlier versions). */
  name?: string;
  /** running: sidecar and service both run; degraded: something is missing or stopped while another part runs; stopped: nothing runs. */
  state: 'running' | 'degraded' | 'stopped';
  sidecar?: SessionContainerSummary;
  service?: SessionContainerSummary;
  /** Every container of the session, other roles included. */
  containers: SessionContainerSummary[];
  /** Labels of the session (the sidecar's, else the service's). */
  labels: Record<string, string>;
  /** Creation time of its oldest container. */
  created: Date;
}

/** Groups labelled containers into sessions, oldest first. Containers without a session label are ignored. */
export function groupSessions(containers: readonly ContainerSummary[]): SessionSummary[] {
  const byId = new Map<string, ContainerSummary[]>();
  for (const c of containers) {
    const id = c.labels[SESSION_LABELS.session];
    if (!id) continue;
    byId.set(id, [...(byId.get(id) ?? []), c]);
  }
  const sessions: SessionSummary[] = [];
  for (const [id, members] of byId) {
    const summaries = members
      .map(
        (c): SessionContainerSummary => ({
          id: c.id,
          name: c.name,
          role: c.labels[SESSION_LABELS.role] ?? '',
          image: c.image,
          state: c.state,
          status: c.status,
          created: new Date(c.created * 1000),
        }),
      )
      .sort((a, b) => a.created.getTime() - b.created.getTime() || a.name.localeCompare(b.name));
    const sidecar = summaries.find((c) => c.role === 'sidecar');
    const service = summaries.find((c) => c.role === 'service');
    const primary = members.find((c) => c.labels[SESSION_LABELS.role] === 'sidecar') ?? members[0];
    const labels = primary?.labels ?? {};
    const running = summaries.filter((c) => c.state === 'running');
    let state: SessionSummary['state'] = 'degraded';
    if (running.length === 0) state = 'stopped';
    else if (
      sidecar?.state === 'running' &&
      service?.state === 'running' &&
      running.length === summaries.length
    )
      state = 'running';
    const session: SessionSummary = {
      id,
      workload: labels[SESSION_LABELS.workload] ?? '',
      namespace: labels[SESSION_LABELS.namespace] ?? '',
      state,
      containers: summaries,
      labels,
      created: summaries[0]?.created ?? new Date(0),
    };
    const context = labels[SESSION_LABELS.context];
    if (context) session.context = context;
    const name = labels[SESSION_LABELS.name];
    if (name) session.name = name;
    if (sidecar) session.sidecar = sidecar;
    if (service) session.service = service;
    sessions.push(session);
  }
  return sessions.sort((a, b) => a.created.getTime() - b.created.getTime() || a.id.localeCompare(b.id));
}
