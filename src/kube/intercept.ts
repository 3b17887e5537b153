/**
 * Pure transforms that put the devbox agent into a workload and point its Services at
 * it, and that compute the exact originals back.
 *
 * What changes on `up`:
 * - the pod template gets one more container (`devbox-agent`) and one more volume
 *   (the agent bundle ConfigMap), both appended; nothing else in the template moves;
 * - when the app container names the port (`http`), the agent's port takes that name and
 *   the app's port entry loses it (probes and hooks that used the name get the number).
 *   A Service whose targetPort is that name needs no change at all: during the rollout
 *   each pod resolves it by itself, old pods to the app, new pods to the agent, so
 *   in-cluster clients never reach a new pod's app directly. A numeric targetPort of such
 *   a port becomes the name, which old pods resolve exactly as before (so it is written
 *   before the rollout);
 * - an unnamed app port gets an agent port named `dbx-8080`, and each Service port
 *   reaching it is retargeted to that name after the rollout (before, old pods would drop
 *   out of the endpoints with no new pod to take over);
 * - the workload and each changed Service carry `devbox.dev/original`: their spec as
 *   read before the change, plus what devbox added, so any machine can undo it;
 *   the workload also carries `devbox.dev/session` (who, where, since when).
 *
 * How it is undone (`restore*`): remove exactly what the annotation says devbox added,
 * then compare with the stored original. When nothing else changed meanwhile (the
 * normal case) the result *is* the stored original. When someone else changed the
 * object during the session (HPA scaling, a `kubectl rollout restart` stamping
 * `kubectl.kubernetes.io/restartedAt` into the template, a new image from CI), their
 * changes are kept and listed as drift, unless the caller asks for the original; writing
 * the old spec back would silently revert a deploy and, for restartedAt, trigger yet
 * another rollout. devbox itself never touches template annotations, so a restartedAt
 * that existed before `up` comes back unchanged.
 *
 * How it is written (see session.ts): a full replace (PUT) of the object as read, with
 * its resourceVersion. The server stores what is sent (defaulting is idempotent on an
 * object it defaulted itself) or answers 409 if anything changed since the read, and
 * the computation is redone on a fresh read. Merge patches cannot promise that: a JSON
 * merge patch must spell out nulls for every removed key and has no precondition, and a
 * strategic merge patch merges Service ports by `port` alone, so TCP and UDP on one
 * port number collide (kubernetes#39188). The objects are handled as raw JSON, never
 * through the typed client models, which drop fields they do not know.
 */
import type {
  V1Container,
  V1ContainerPort,
  V1PodSpec,
  V1ResourceRequirements,
  V1Service,
  V1ServicePort,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import {
  AGENT_FILES_ROOT,
  type AgentLaunch,
  agentStartCommand,
  DEFAULT_TUNNEL_PORT,
  decodeAgentContainerEnv,
  encodeAgentEnv,
} from '../tunnel/agent-contract.js';
import type { InterceptSpec } from '../tunnel/protocol.js';
import { DevboxError, errorText } from '../util/errors.js';
import { differingPaths } from './json-compare.js';
import {
  AGENT_BUNDLE_VOLUME,
  AGENT_CONTAINER,
  ANNOTATION_ORIGINAL,
  ANNOTATION_SESSION,
  checkServiceRecord,
  checkWorkloadRecord,
  defaultSessionName,
  parseOriginalRecord,
  parseSessionRecords,
  type SessionRecord,
} from './restore-record.js';
import { podTemplate, portsReachingContainer, type Workload, workloadLabel } from './workload.js';

export { AGENT_BUNDLE_VOLUME, AGENT_CONTAINER, ANNOTATION_ORIGINAL, ANNOTATION_SESSION };
export const AGENT_MOUNT_PATH = '/devbox';
export const AGENT_POD_FILES_ROOT = AGENT_FILES_ROOT;
export const AGENT_BUNDLE_FILE = 'agent.mjs';
export { DEFAULT_TUNNEL_PORT };
export const DEFAULT_FIRST_AGENT_PORT = 47001;
/** Non-root uid/gid the agent runs as when the app runs as root (the image's own user may be root). */
export const AGENT_UID = 65532;

/** Who holds a workload's session. */
export interface SessionHolder {
  user: string;
  host: string;
  /** ISO 8601 time the session started. */
  startedAt: string;
  /** Random id of the session (also in the sidecar's Docker labels). */
  id: string;
  /**
   * The `up` process that claimed the workload, on `host`: while it runs, the claim is being
   * acted on, even by the same user (a second `up` from the same machine must not take it over).
   */
  pid?: number;
}

export interface AgentSettings {
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** ConfigMap holding the agent bundle under `bundleKey`. */
  bundleConfigMap: string;
  bundleKey?: string;
  /** sha256 (hex) of that bundle: the agent refuses to start from any other code. */
  bundleSha256: string;
  /** Secret holding the token the sidecar must present, under `tokenSecretKey`. */
  tokenSecret: string;
  tokenSecretKey?: string;
  /** Port the agent's tunnel listens on, on 127.0.0.1 only. */
  tunnelPort?: number;
  /** Intercept ports are allocated upward from here, skipping ports the pod uses. */
  firstAgentPort?: number;
  resources?: V1ResourceRequirements;
}

export interface InterceptRequest {
  workload: Workload;
  /** Services of the namespace (those selecting the workload are considered). */
  services: readonly V1Service[];
  /** Container whose traffic is intercepted. */
  container: string;
  agent: AgentSettings;
  holder: SessionHolder;
  /** Services to leave untouched, e.g. ones shared with other workloads. */
  excludeServices?: readonly string[];
}

/** One Service port moved to the agent. */
export interface InterceptedPort {
  service: string;
  port: number;
  protocol: string;
  originalTargetPort: number | string;
  appPort: number;
  agentPort: number;
  agentPortName: string;
}

/** How the pods pick up the agent after the workload is written. */
export type RolloutMode =
  /** The controller replaces the pods. */
  | 'automatic'
  /** StatefulSet with `OnDelete`: pods must be deleted to be replaced. */
  | 'delete-pods'
  /** Deployment is paused: nothing happens until it is resumed. */
  | 'paused'
  /** Zero replicas: no pod will run the agent. */
  | 'no-replicas';

export interface InterceptPlan {
  workload: Workload;
  /** Only the Services that change. */
  services: V1Service[];
  /** Those of `services` whose change keeps every current endpoint: written before the rollout. */
  servicesFirst: string[];
  ports: InterceptedPort[];
  /** The agent's intercepts (agent port → app port), as its env carries them. */
  intercepts: InterceptSpec[];
  tunnelPort: number;
  /** The app container's volume mounts and where the agent serves them. */
  files: AgentFileMount[];
  /** Service ports reaching the container that are not intercepted, with why. */
  skipped: { service: string; port: number; protocol: string; reason: string }[];
  rollout: RolloutMode;
  warnings: string[];
}

/** What the workload's `devbox.dev/original` holds. */
export interface WorkloadOriginal {
  v: 1;
  kind: Workload['kind'];
  spec: Workload['spec'];
  /** What devbox added to the pod template, removed again on restore. */
  agent: { container: string; volumes: string[] };
  /**
   * Fields of the app container as devbox wrote them (port names handed to the agent):
   * each is put back from `spec` on restore while it still reads as written.
   */
  app?: { container: string; fields: Partial<V1Container> };
  /** Services devbox changed. */
  services: string[];
}

/** What a Service's `devbox.dev/original` holds. */
export interface ServiceOriginal {
  v: 1;
  spec: V1Service['spec'];
  /** The ports devbox retargeted and the targetPort it set. */
  ports: { port: number; protocol: string; targetPort: number | string }[];
  workload: string;
}

function clone<T>(v: T): T {
  return structuredClone(v);
}

function protocolOf(p: { protocol?: string }): string {
  return p.protocol || 'TCP';
}

function annotationsOf(obj: { metadata?: { annotations?: Record<string, string> } }): Record<string, string> {
  return obj.metadata?.annotations ?? {};
}

function nameOf(obj: { metadata?: { name?: string } }): string {
  return obj.metadata?.name ?? '';
}

/**
 * The sessions recorded on an object, oldest first (none when it carries no record); CONFLICT
 * naming the field when the record is not devbox's.
 */
export function sessionsOf(obj: {
  kind?: string;
  metadata?: { name?: string; annotations?: Record<string, string> };
}): SessionRecord[] {
  const raw = annotationsOf(obj)[ANNOTATION_SESSION];
  if (raw === undefined) return [];
  return parseSessionRecords(raw, `${(obj.kind ?? 'object').toLowerCase()}/${nameOf(obj)}`);
}

/** The oldest session recorded on an object, if any. */
export function sessionOf(obj: {
  kind?: string;
  metadata?: { name?: string; annotations?: Record<string, string> };
}): SessionRecord | undefined {
  return sessionsOf(obj)[0];
}

/** A holder as a session of the record: a global, local session named after its user unless it says more. */
export function asSessionRecord(h: SessionHolder | SessionRecord): SessionRecord {
  return {
    name: defaultSessionName(h.user),
    route: { mode: 'global', headers: [] },
    kind: 'local',
    ...h,
  };
}

/** The workload with exactly these sessions recorded (the annotation goes with the last one). */
export function withSessions(w: Workload, sessions: readonly SessionRecord[]): Workload {
  const out = clone(w);
  const annotations = { ...annotationsOf(out) };
  if (sessions.length) annotations[ANNOTATION_SESSION] = JSON.stringify(sessions);
  else delete annotations[ANNOTATION_SESSION];
  out.metadata = { ...out.metadata, annotations };
  if (Object.keys(annotations).length === 0) delete out.metadata.annotations;
  return out;
}

/** True when the holder is the same user on the same host (e.g. a session left by a crash). */
export function isSameHolder(a: SessionHolder, b: Pick<SessionHolder, 'user' | 'host'>): boolean {
  return a.user === b.user && a.host === b.host;
}

/** "alice@laptop since 2026-05-01T10:00:00Z (session 3f2a)". */
export function describeHolder(h: SessionHolder): string {
  return `${h.user}@${h.host}${h.startedAt ? ` since ${h.startedAt}` : ''}${h.id ? ` (session ${h.id})` : ''}`;
}

/**
 * The workload claimed for `holder`: only its session annotation changes, `holder` joining the
 * sessions recorded (replacing those named in `replacing`, left by a crash). Written with the
 * resourceVersion it was read with, the claim is the atomic first step of `up`: of several `up`s
 * that read the same version, exactly one write succeeds, the others get 409.
 */
export function withClaim(
  w: Workload,
  holder: SessionHolder | SessionRecord,
  replacing: readonly string[] = [],
): Workload {
  const kept = sessionsOf(w).filter((s) => s.id !== holder.id && !replacing.includes(s.id));
  return withSessions(w, [...kept, asSessionRecord(holder)]);
}

/**
 * CONFLICT when devbox's agent is in the workload or another session is recorded, naming who
 * holds it; a claim of `claimant` (its session alone, no agent written yet) is not one.
 */
export function assertNotIntercepted(w: Workload, claimant?: Pick<SessionHolder, 'id'>): void {
  const sessions = sessionsOf(w);
  const others = sessions.filter((s) => s.id !== claimant?.id);
  const hasOriginal = annotationsOf(w)[ANNOTATION_ORIGINAL] !== undefined;
  if (others.length === 0 && !hasOriginal) return;
  const label = workloadLabel(w.kind, nameOf(w));
  const holder = others[0] ?? sessions[0];
  throw new DevboxError(
    'CONFLICT',
    `${label} is already in use by ${holder ? describeHolder(holder) : 'an earlier devbox session'}`,
    {
      hint: `end it with \`devbox down ${nameOf(w)}\` where it runs, or \`devbox clean\` from any machine`,
    },
  );
}

/** Ports the pod already uses: declared, host, and probe ports, in every container. */
function usedPorts(spec: V1PodSpec | undefined): Set<number> {
  const used = new Set<number>();
  const probePort = (p: unknown) => {
    if (typeof p === 'number') used.add(p);
  };
  for (const c of [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])]) {
    for (const p of c.ports ?? []) {
      used.add(p.containerPort);
      if (p.hostPort) used.add(p.hostPort);
    }
    for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
      probePort(probe?.httpGet?.port);
      probePort(probe?.tcpSocket?.port);
      probePort(probe?.grpc?.port);
    }
  }
  return used;
}

function usedPortNames(spec: V1PodSpec | undefined): Set<string> {
  const names = new Set<string>();
  for (const c of [...(spec?.containers ?? []), ...(spec?.initContainers ?? [])]) {
    for (const p of c.ports ?? []) if (p.name) names.add(p.name);
  }
  return names;
}

/** The IANA service name used as the agent's port name for an app port. */
export function agentPortName(appPort: number): string {
  return `dbx-${appPort}`;
}

function rolloutMode(w: Workload): RolloutMode {
  if (w.spec?.replicas === 0) return 'no-replicas';
  if (w.kind === 'Deployment' && w.spec?.paused) return 'paused';
  if (w.kind === 'StatefulSet' && w.spec?.updateStrategy?.type === 'OnDelete') return 'delete-pods';
  return 'automatic';
}

/** An app volume mount as the agent sees it, under AGENT_POD_FILES_ROOT. */
export interface AgentFileMount {
  /** Where the app container sees it. */
  mountPath: string;
  /** Where the agent serves it from (`GET /v1/files?path=`). */
  agentPath: string;
  volume: string;
}

/**
 * The app container's volume mounts, read-only under AGENT_POD_FILES_ROOT, so the agent
 * can serve their contents. Mounts using subPathExpr are left out: it expands the app's
 * own env, which the agent does not have.
 */
function agentFileMounts(app: V1Container): {
  mounts: V1VolumeMount[];
  files: AgentFileMount[];
  skipped: string[];
} {
  const mounts: V1VolumeMount[] = [];
  const files: AgentFileMount[] = [];
  const skipped: string[] = [];
  for (const m of app.volumeMounts ?? []) {
    if (m.subPathExpr) {
      skipped.push(m.mountPath);
      continue;
    }
    const agentPath = `${AGENT_POD_FILES_ROOT}${m.mountPath.startsWith('/') ? '' : '/'}${m.mountPath}`;
    const mount: V1VolumeMount = { name: m.name, mountPath: agentPath, readOnly: true };
    if (m.subPath) mount.subPath = m.subPath;
    mounts.push(mount);
    files.push({ mountPath: m.mountPath, agentPath, volume: m.name });
  }
  return { mounts, files, skipped };
}

/** The app's non-root uid/gid when it has one, so the agent reads its files with the same rights. */
function agentIdentity(app: V1Container, spec: V1PodSpec): { uid: number; gid: number } {
  const uid = app.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
  const gid = app.securityContext?.runAsGroup ?? spec.securityContext?.runAsGroup;
  const nonRootUid = uid !== undefined && uid > 0 ? uid : AGENT_UID;
  return { uid: nonRootUid, gid: gid !== undefined && gid > 0 ? gid : nonRootUid };
}

function agentContainer(
  agent: AgentSettings,
  ports: V1ContainerPort[],
  launch: AgentLaunch,
  fileMounts: V1VolumeMount[],
  identity: { uid: number; gid: number },
): V1Container {
  const container: V1Container = {
    name: AGENT_CONTAINER,
    image: agent.image,
    imagePullPolicy: agent.imagePullPolicy ?? 'IfNotPresent',
    command: agentStartCommand(`${AGENT_MOUNT_PATH}/${agent.bundleKey ?? AGENT_BUNDLE_FILE}`),
    env: encodeAgentEnv(launch, { secret: agent.tokenSecret, key: agent.tokenSecretKey ?? 'token' }),
    volumeMounts: [{ name: AGENT_BUNDLE_VOLUME, mountPath: AGENT_MOUNT_PATH, readOnly: true }, ...fileMounts],
    resources: agent.resources ?? { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '256Mi' } },
    // Everything the `restricted` Pod Security level asks of a container.
    securityContext: {
      runAsNonRoot: true,
      runAsUser: identity.uid,
      runAsGroup: identity.gid,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
  if (ports.length) container.ports = ports;
  // Ready once it listens, so a rollout waits for a working agent. Not on an intercept port:
  // with a session there, each probe would go to the local app.
  container.readinessProbe = {
    tcpSocket: { port: launch.healthPort },
    periodSeconds: 2,
    failureThreshold: 3,
  };
  return container;
}

type PortRef = { port?: number | string } | undefined;
const PROBES = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const;

/**
 * Gives the app's port names in `takenOver` (name → port) up to the agent: the port entries
 * lose their name, probes and lifecycle hooks that used it get the number. Returns the
 * changed fields as written, or undefined when nothing changed.
 */
function handOverPortNames(
  app: V1Container,
  takenOver: Map<string, number>,
): Partial<V1Container> | undefined {
  if (takenOver.size === 0) return undefined;
  const fields: Partial<V1Container> = {};
  app.ports = app.ports?.map((p) => {
    if (!p.name || !takenOver.has(p.name)) return p;
    const { name: _, ...unnamed } = p;
    return unnamed;
  });
  fields.ports = app.ports;
  const renumber = (ref: PortRef): boolean => {
    if (!ref || typeof ref.port !== 'string' || !takenOver.has(ref.port)) return false;
    ref.port = takenOver.get(ref.port) as number;
    return true;
  };
  for (const key of PROBES) {
    const probe = app[key];
    if (probe && [renumber(probe.httpGet), renumber(probe.tcpSocket)].some(Boolean)) fields[key] = probe;
  }
  const hooks = app.lifecycle;
  if (
    hooks &&
    [hooks.postStart, hooks.preStop]
      .flatMap((h) => [renumber(h?.httpGet), renumber(h?.tcpSocket)])
      .some(Boolean)
  )
    fields.lifecycle = hooks;
  return clone(fields);
}

/** Puts back the app container fields devbox changed, where they still read as devbox wrote them. */
function restoreAppFields(w: Workload, original: WorkloadOriginal): void {
  if (!original.app) return;
  const name = original.app.container;
  const current = podTemplate(w).spec?.containers.find((c) => c.name === name);
  const before = original.spec?.template?.spec?.containers.find((c) => c.name === name);
  if (!current || !before) return;
  for (const [key, written] of Object.entries(original.app.fields) as [keyof V1Container, unknown][]) {
    if (differingPaths(written, current[key]).length > 0) continue;
    if (before[key] === undefined) delete current[key];
    else (current as unknown as Record<string, unknown>)[key] = clone(before[key]);
  }
}

/**
 * The workload with the agent added and the Services retargeted to it.
 * Throws CONFLICT when the workload already has a session (other than a claim of `req.holder`) or a name devbox needs.
 */
export function planIntercept(req: InterceptRequest): InterceptPlan {
  const w = req.workload;
  const label = workloadLabel(w.kind, nameOf(w));
  const spec = assertPlannable(req, label);
  const app = spec.containers.find((c) => c.name === req.container) as V1Container;
  const alloc = allocateAgentPorts(req, label, spec, app);
  const retargeted = alloc.ports.filter((p) => p.originalTargetPort !== p.agentPortName);
  const changedServices = [...new Set(retargeted.map((p) => p.service))].sort();
  const takenOver = new Map(alloc.pairs.filter((p) => p.agent.takenOver).map((p) => [p.agent.name, p.app]));
  const servicesFirst = changedServices.filter((name) =>
    retargeted.filter((p) => p.service === name).every((p) => takenOver.has(p.agentPortName)),
  );
  const patched = workloadWithAgent(req, app, alloc, takenOver, changedServices);
  const rollout = rolloutMode(w);
  return {
    workload: patched.workload,
    services: retargetedServices(req, label, retargeted, changedServices),
    servicesFirst,
    ports: alloc.ports,
    intercepts: alloc.intercepts,
    tunnelPort: alloc.tunnelPort,
    files: patched.files.files,
    skipped: alloc.skipped,
    rollout,
    warnings: planWarnings(req, label, rollout, alloc, patched.files.skipped),
  };
}

/** The pod spec, once it is known devbox can add its agent (no session, no names devbox needs). */
function assertPlannable(req: InterceptRequest, label: string): V1PodSpec {
  assertNotIntercepted(req.workload, req.holder);
  const spec = podTemplate(req.workload).spec;
  if (!spec?.containers.some((c) => c.name === req.container)) {
    throw new DevboxError('NOT_FOUND', `container "${req.container}" not found in ${label}`);
  }
  if ([...spec.containers, ...(spec.initContainers ?? [])].some((c) => c.name === AGENT_CONTAINER)) {
    throw new DevboxError('CONFLICT', `${label} already has a container named ${AGENT_CONTAINER}`, {
      hint: 'a devbox agent left behind without its annotation; remove that container from the workload',
    });
  }
  if ((spec.volumes ?? []).some((v) => v.name === AGENT_BUNDLE_VOLUME)) {
    throw new DevboxError('CONFLICT', `${label} already has a volume named ${AGENT_BUNDLE_VOLUME}`);
  }
  return spec;
}

/** The agent's ports: one per app port a Service reaches, plus its tunnel and health ports. */
interface AgentPorts {
  ports: InterceptedPort[];
  skipped: InterceptPlan['skipped'];
  /** App port → the agent port standing for it (`takenOver`: it carries the app port's own name). */
  pairs: { app: number; agent: { port: number; name: string; takenOver: boolean } }[];
  intercepts: InterceptSpec[];
  tunnelPort: number;
  healthPort: number;
}

function allocateAgentPorts(
  req: InterceptRequest,
  label: string,
  spec: V1PodSpec,
  app: V1Container,
): AgentPorts {
  const excluded = new Set(req.excludeServices ?? []);
  const targets = portsReachingContainer(req.workload, req.services, req.container);
  // A name an excluded Service targets must keep leading to the app.
  const keptNames = new Set(
    targets
      .filter((t) => excluded.has(t.service) && typeof t.servicePort.targetPort === 'string')
      .map((t) => t.servicePort.targetPort as string),
  );
  const used = usedPorts(spec);
  const names = usedPortNames(spec);
  const tunnelPort = req.agent.tunnelPort ?? DEFAULT_TUNNEL_PORT;
  used.add(tunnelPort);
  let next = req.agent.firstAgentPort ?? DEFAULT_FIRST_AGENT_PORT;
  const agentPortFor = new Map<number, AgentPorts['pairs'][number]['agent']>();
  const ports: InterceptedPort[] = [];
  const skipped: InterceptPlan['skipped'] = [];

  for (const t of targets) {
    const sp = t.servicePort;
    const protocol = protocolOf(sp);
    const base = { service: t.service, port: sp.port, protocol };
    if (excluded.has(t.service)) {
      skipped.push({ ...base, reason: 'excluded' });
      continue;
    }
    if (protocol !== 'TCP') {
      skipped.push({ ...base, reason: `${protocol} is not intercepted; it keeps reaching the pod` });
      continue;
    }
    let agentPort = agentPortFor.get(t.containerPort);
    if (!agentPort) {
      while (used.has(next)) next++;
      const appName = app.ports?.find(
        (p) => p.containerPort === t.containerPort && protocolOf(p) === 'TCP',
      )?.name;
      const takeOver = appName !== undefined && !keptNames.has(appName);
      const name = takeOver ? appName : agentPortName(t.containerPort);
      if (!takeOver && names.has(name))
        throw new DevboxError('CONFLICT', `${label} already declares a port named ${name}`);
      agentPort = { port: next, name, takenOver: takeOver };
      used.add(next);
      names.add(name);
      agentPortFor.set(t.containerPort, agentPort);
    }
    ports.push({
      ...base,
      originalTargetPort: sp.targetPort ?? sp.port,
      appPort: t.containerPort,
      agentPort: agentPort.port,
      agentPortName: agentPort.name,
    });
  }

  const pairs = [...agentPortFor].map(([app, agent]) => ({ app, agent }));
  while (used.has(next)) next++;
  return {
    ports,
    skipped,
    pairs,
    intercepts: pairs.map((p) => ({ listenPort: p.agent.port, appPort: p.app })),
    tunnelPort,
    healthPort: next,
  };
}

/** The workload with the agent container and volume appended and its restore record annotated. */
function workloadWithAgent(
  req: InterceptRequest,
  app: V1Container,
  alloc: AgentPorts,
  takenOver: Map<string, number>,
  changedServices: string[],
): { workload: Workload; files: ReturnType<typeof agentFileMounts> } {
  const w = req.workload;
  const patched = clone(w);
  const pSpec = podTemplate(patched).spec as V1PodSpec;
  const appFields = handOverPortNames(
    pSpec.containers.find((c) => c.name === req.container) as V1Container,
    takenOver,
  );
  const containerPorts: V1ContainerPort[] = alloc.pairs.map((p) => ({
    name: p.agent.name,
    containerPort: p.agent.port,
    protocol: 'TCP',
  }));
  const files = agentFileMounts(app);
  const launch = {
    tunnelPort: alloc.tunnelPort,
    healthPort: alloc.healthPort,
    intercepts: alloc.intercepts,
    session: req.holder.id,
    bundleSha256: req.agent.bundleSha256,
  };
  const identity = agentIdentity(app, podTemplate(w).spec as V1PodSpec);
  pSpec.containers.push(agentContainer(req.agent, containerPorts, launch, files.mounts, identity));
  const volume: V1Volume = { name: AGENT_BUNDLE_VOLUME, configMap: { name: req.agent.bundleConfigMap } };
  pSpec.volumes = [...(pSpec.volumes ?? []), volume];
  const original: WorkloadOriginal = {
    v: 1,
    kind: w.kind,
    spec: clone(w.spec),
    agent: { container: AGENT_CONTAINER, volumes: [AGENT_BUNDLE_VOLUME] },
    ...(appFields ? { app: { container: req.container, fields: appFields } } : {}),
    services: changedServices,
  };
  patched.metadata = {
    ...patched.metadata,
    annotations: {
      ...annotationsOf(patched),
      [ANNOTATION_ORIGINAL]: JSON.stringify(original),
      // The claim recorded the session already; a workload planned unclaimed gets it here.
      [ANNOTATION_SESSION]: JSON.stringify(sessionsOf(withClaim(w, req.holder))),
    },
  };
  return { workload: patched, files };
}

/** The Services that change, their ports pointed at the agent and their restore record annotated. */
function retargetedServices(
  req: InterceptRequest,
  label: string,
  retargeted: InterceptedPort[],
  changedServices: string[],
): V1Service[] {
  return changedServices.map((name) => {
    const svc = req.services.find((s) => nameOf(s) === name) as V1Service;
    const mine = retargeted.filter((p) => p.service === name);
    const out = clone(svc);
    for (const sp of out.spec?.ports ?? []) {
      const hit = mine.find((p) => p.port === sp.port && p.protocol === protocolOf(sp));
      if (hit) sp.targetPort = hit.agentPortName;
    }
    const record: ServiceOriginal = {
      v: 1,
      spec: clone(svc.spec),
      ports: mine.map((p) => ({ port: p.port, protocol: p.protocol, targetPort: p.agentPortName })),
      workload: label,
    };
    out.metadata = {
      ...out.metadata,
      annotations: { ...annotationsOf(out), [ANNOTATION_ORIGINAL]: JSON.stringify(record) },
    };
    return out;
  });
}

function planWarnings(
  req: InterceptRequest,
  label: string,
  rollout: RolloutMode,
  alloc: AgentPorts,
  skippedFiles: string[],
): string[] {
  const w = req.workload;
  const warnings: string[] = [];
  if (rollout === 'paused')
    warnings.push(`${label} is paused: its pods get the agent only after \`kubectl rollout resume\``);
  if (rollout === 'no-replicas') warnings.push(`${label} has 0 replicas: no pod will run the agent`);
  if (rollout === 'delete-pods')
    warnings.push(`${label} uses the OnDelete update strategy: its pods must be deleted to get the agent`);
  const partition = w.kind === 'StatefulSet' ? w.spec?.updateStrategy?.rollingUpdate?.partition : undefined;
  if (partition)
    warnings.push(
      `${label} has a rollout partition of ${partition}: pods below that ordinal keep running without the agent`,
    );
  for (const p of alloc.pairs.filter((p) => !p.agent.takenOver)) {
    const via = alloc.ports.filter((q) => q.appPort === p.app).map((q) => `service/${q.service}:${q.port}`);
    warnings.push(
      `container port ${p.app} of ${req.container} has no name, so ${via.join(', ')} can only move to the agent after the rollout: clients that connect in between stay with the pod's app until they reconnect. Name the container port (e.g. \`name: http\`) for a seamless switch`,
    );
  }
  for (const path of skippedFiles) {
    warnings.push(`the volume mounted at ${path} uses subPathExpr; the agent cannot serve its contents`);
  }
  return warnings;
}

/** The result of undoing devbox's changes on one object. */
export interface Restored<T> {
  /** The object to write back (current metadata, resourceVersion kept for the precondition). */
  object: T;
  /** True when the spec equals the stored original exactly. */
  exact: boolean;
  /** Where the object differs from the stored original (changes made by others meanwhile). */
  drift: string[];
}

export interface RestoreOptions {
  /**
   * What wins where someone else changed the object during the session:
   * 'current' keeps their changes (default), 'original' writes the stored spec back.
   */
  prefer?: 'current' | 'original';
}

function withoutOurAnnotations<T extends { metadata?: { annotations?: Record<string, string> } }>(obj: T): T {
  const out = clone(obj);
  const annotations = { ...annotationsOf(out) };
  delete annotations[ANNOTATION_ORIGINAL];
  delete annotations[ANNOTATION_SESSION];
  if (out.metadata) {
    if (Object.keys(annotations).length) out.metadata.annotations = annotations;
    else delete out.metadata.annotations;
  }
  return out;
}

function specDrift(original: unknown, current: unknown): string[] {
  return differingPaths(original, current).map((p) =>
    p === '.' ? 'spec' : p.startsWith('[') ? `spec${p}` : `spec.${p}`,
  );
}

/** The workload without the agent container and volumes (`volumes` dropped when emptied and absent before). */
function withoutAgent(
  w: Workload,
  container: string,
  volumes: readonly string[],
  hadVolumes: boolean,
): Workload {
  const tSpec = podTemplate(w).spec;
  if (!tSpec) return w;
  const drop = new Set(volumes);
  tSpec.containers = tSpec.containers.filter((c) => c.name !== container);
  if (tSpec.initContainers) tSpec.initContainers = tSpec.initContainers.filter((c) => c.name !== container);
  if (tSpec.volumes) {
    tSpec.volumes = tSpec.volumes.filter((v) => !drop.has(v.name));
    if (tSpec.volumes.length === 0 && !hadVolumes) delete tSpec.volumes;
  }
  return w;
}

/**
 * Without a record: the port names the agent took over go back to the app ports it
 * forwards to (read from its env), where those ports have no name. Returns why names
 * could not be given back, if they could not.
 */
function givePortNamesBack(w: Workload): string[] {
  const containers = podTemplate(w).spec?.containers ?? [];
  const agent = containers.find((c) => c.name === AGENT_CONTAINER);
  if (!agent) return [];
  let intercepts: InterceptSpec[];
  try {
    intercepts = decodeAgentContainerEnv(agent.env).intercepts;
  } catch (err) {
    return [`port names the agent took over were not given back: ${errorText(err)}`];
  }
  for (const { listenPort, appPort } of intercepts) {
    const name = agent.ports?.find((p) => p.containerPort === listenPort)?.name;
    if (!name || name === agentPortName(appPort)) continue;
    for (const c of containers) {
      const port = c.name === AGENT_CONTAINER ? undefined : c.ports?.find((p) => p.containerPort === appPort);
      if (port && !port.name && protocolOf(port) === 'TCP') port.name = name;
    }
  }
  return [];
}

/** The stored original of a workload, if devbox changed it. */
export function workloadOriginal(w: Workload): WorkloadOriginal | undefined {
  const raw = annotationsOf(w)[ANNOTATION_ORIGINAL];
  if (raw === undefined) return undefined;
  const what = workloadLabel(w.kind, nameOf(w));
  const record = parseOriginalRecord(raw, what);
  checkWorkloadRecord(record, w.kind, what);
  return record as WorkloadOriginal;
}

/** The stored original of a Service, if devbox changed it. */
export function serviceOriginal(s: V1Service): ServiceOriginal | undefined {
  const raw = annotationsOf(s)[ANNOTATION_ORIGINAL];
  if (raw === undefined) return undefined;
  const what = `service/${nameOf(s)}`;
  const record = parseOriginalRecord(raw, what);
  checkServiceRecord(record, what);
  return record as ServiceOriginal;
}

/**
 * The workload as it was before `up`, computed from its current state and its
 * annotation; undefined when devbox has not changed it.
 */
export function restoreWorkload(
  current: Workload,
  options: RestoreOptions = {},
): Restored<Workload> | undefined {
  const original = workloadOriginal(current);
  if (!original) {
    // No record (lost, or a write interrupted): remove what devbox adds, by its names.
    const template = podTemplate(current).spec;
    const hasAgent =
      template?.containers.some((c) => c.name === AGENT_CONTAINER) ||
      template?.volumes?.some((v) => v.name === AGENT_BUNDLE_VOLUME);
    if (sessionOf(current) === undefined && !hasAgent) return undefined;
    const unnamed = withoutOurAnnotations(current);
    const notes = givePortNamesBack(unnamed);
    const stripped = withoutAgent(unnamed, AGENT_CONTAINER, [AGENT_BUNDLE_VOLUME], false);
    return {
      object: stripped,
      exact: !hasAgent,
      drift: hasAgent ? [`no ${ANNOTATION_ORIGINAL} record: removed the agent only`, ...notes] : [],
    };
  }
  const stripped = withoutAgent(
    withoutOurAnnotations(current),
    original.agent.container,
    original.agent.volumes,
    original.spec?.template?.spec?.volumes !== undefined,
  );
  restoreAppFields(stripped, original);
  const drift = specDrift(original.spec, stripped.spec);
  if (drift.length === 0 || options.prefer === 'original') {
    stripped.spec = clone(original.spec) as typeof stripped.spec;
  }
  return { object: stripped, exact: drift.length === 0 || options.prefer === 'original', drift };
}

/**
 * The Service as it was before `up`; undefined when devbox has not changed it.
 * Only ports still pointing where devbox pointed them are moved back.
 */
export function restoreService(
  current: V1Service,
  options: RestoreOptions = {},
): Restored<V1Service> | undefined {
  const original = serviceOriginal(current);
  if (!original) return undefined;
  const stripped = withoutOurAnnotations(current);
  for (const sp of stripped.spec?.ports ?? []) {
    const ours = original.ports.find((p) => p.port === sp.port && p.protocol === protocolOf(sp));
    if (!ours || sp.targetPort !== ours.targetPort) continue;
    const before = original.spec?.ports?.find(
      (p: V1ServicePort) => p.port === sp.port && protocolOf(p) === ours.protocol,
    );
    if (before?.targetPort === undefined) delete sp.targetPort;
    else sp.targetPort = before.targetPort;
  }
  const drift = specDrift(original.spec, stripped.spec);
  if (drift.length === 0 || options.prefer === 'original') {
    stripped.spec = clone(original.spec);
  }
  return { object: stripped, exact: drift.length === 0 || options.prefer === 'original', drift };
}
