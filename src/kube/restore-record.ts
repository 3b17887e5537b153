/**
 * The restore records devbox keeps in annotations (`devbox.dev/original`,
 * `devbox.dev/session`) are read back from the cluster, where anyone allowed to edit
 * the object can change them. Restoring writes what they say, so each is checked to be
 * what devbox itself writes before it is used: the agent it names is devbox's, the app
 * fields it puts back differ from the original only in the port names devbox handed to
 * the agent, the holder is a holder. A record that fails is refused with the field
 * named, before anything is written.
 */
import type { V1Container } from '@kubernetes/client-node';
import { DevboxError } from '../util/errors.js';
import { differingPaths } from './json-compare.js';

/** Names devbox gives what it adds to a pod template (intercept.ts uses these). */
export const AGENT_CONTAINER = 'devbox-agent';
export const AGENT_BUNDLE_VOLUME = 'devbox-agent-bundle';
export const ANNOTATION_ORIGINAL = 'devbox.dev/original';
export const ANNOTATION_SESSION = 'devbox.dev/session';

/** App container fields devbox may change when it hands port names to the agent. */
export const HANDED_OVER_FIELDS = ['ports', 'livenessProbe', 'readinessProbe', 'startupProbe', 'lifecycle'];

type Record_ = Record<string, unknown>;

/** A record that is not what devbox writes. */
export function tamperedRecord(
  annotation: string,
  what: string,
  problem: string,
  cause?: unknown,
): DevboxError {
  return new DevboxError(
    'CONFLICT',
    `the ${annotation} annotation of ${what} is not a record devbox wrote: ${problem}`,
    {
      hint: `it was changed after devbox wrote it, so nothing was changed; restore ${what} by hand and remove the annotation (kubectl annotate ${what} ${annotation}-)`,
      cause,
    },
  );
}

function isObject(v: unknown): v is Record_ {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseJson(raw: string, annotation: string, what: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw tamperedRecord(annotation, what, 'not JSON', err);
  }
}

/** A session's route as the workload records it: never its personal key, only that it has one. */
export interface RecordedRoute {
  mode: 'global' | 'filtered' | 'mirror';
  headers: { name: string; value: string; regex?: boolean }[];
  pathPrefix?: string;
  personal?: boolean;
}

/** What a session is on the workload: `local` runs a local container; others (a shared link) have none. */
export const SESSION_KINDS = ['local', 'share'] as const;
export type SessionKind = (typeof SESSION_KINDS)[number];

/** One session of a workload, as `up` records it in `devbox.dev/session` (a list, oldest first). */
export interface SessionRecord {
  user: string;
  host: string;
  startedAt: string;
  id: string;
  pid?: number;
  /** Unique on the workload (`--name`, by default the user's). */
  name: string;
  route: RecordedRoute;
  kind: SessionKind;
  /** Set by the last session to leave while it restores the workload: nobody joins meanwhile. */
  ending?: boolean;
}

/** A session name: what `--name` takes, and what container names and `down --name` use. */
export const SESSION_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;

/** The session name a user gets by default: their login, lower case, as a DNS label. */
export function defaultSessionName(user: string): string {
  const name = user
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 32)
    .replace(/-+$/, '');
  return name || 'dev';
}

const GLOBAL: RecordedRoute = { mode: 'global', headers: [] };
/** An HTTP header name (RFC 9110 token), lower case. */
const HEADER_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]{1,256}$/;

/**
 * The `devbox.dev/session` annotation of `what`, checked: a list of sessions. The single
 * object earlier versions wrote reads as one global session named after its user.
 */
export function parseSessionRecords(raw: string, what: string): SessionRecord[] {
  const value = parseJson(raw, ANNOTATION_SESSION, what);
  const bad = (problem: string) => tamperedRecord(ANNOTATION_SESSION, what, problem);
  if (isObject(value)) return [checkSession(value, '', bad, true)];
  if (!Array.isArray(value)) throw bad(`expected a list of sessions, found ${JSON.stringify(value)}`);
  if (value.length > 256) throw bad('more than 256 sessions');
  const sessions = value.map((v, i) => {
    if (!isObject(v)) throw bad(`[${i}] must be an object`);
    return checkSession(v, `[${i}].`, bad, false);
  });
  for (const key of ['id', 'name'] as const) {
    const seen = new Set<string>();
    for (const [i, s] of sessions.entries()) {
      if (seen.has(s[key])) throw bad(`[${i}].${key} "${s[key]}" appears twice`);
      seen.add(s[key]);
    }
  }
  return sessions;
}

function checkSession(
  value: Record_,
  at: string,
  bad: (problem: string) => DevboxError,
  legacy: boolean,
): SessionRecord {
  for (const field of ['user', 'host', 'startedAt', 'id'] as const) {
    if (typeof value[field] !== 'string') throw bad(`${at}${field} must be a string`);
  }
  if (!/^[A-Za-z0-9-]{1,64}$/.test(value.id as string))
    throw bad(`${at}id must be letters, digits and dashes`);
  if ((value.startedAt as string) !== '' && Number.isNaN(Date.parse(value.startedAt as string)))
    throw bad(`${at}startedAt must be a time`);
  if (value.pid !== undefined && !(Number.isSafeInteger(value.pid) && (value.pid as number) > 0))
    throw bad(`${at}pid must be a positive integer`);
  const record: SessionRecord = {
    user: value.user as string,
    host: value.host as string,
    startedAt: value.startedAt as string,
    id: value.id as string,
    ...(value.pid !== undefined ? { pid: value.pid as number } : {}),
    name: legacy ? defaultSessionName(value.user as string) : (value.name as string),
    route: legacy ? GLOBAL : checkRoute(value.route, `${at}route`, bad),
    kind: legacy ? 'local' : (value.kind as SessionKind),
  };
  if (legacy) return record;
  if (typeof value.name !== 'string' || !SESSION_NAME.test(value.name))
    throw bad(`${at}name must be a lower-case DNS label of at most 32 characters`);
  if (!SESSION_KINDS.includes(value.kind as SessionKind))
    throw bad(`${at}kind must be one of ${SESSION_KINDS.join(', ')}`);
  if (value.ending !== undefined && value.ending !== true) throw bad(`${at}ending must be true or absent`);
  if (value.ending) record.ending = true;
  return record;
}

function checkRoute(value: unknown, at: string, bad: (problem: string) => DevboxError): RecordedRoute {
  if (!isObject(value)) throw bad(`${at} must be an object`);
  if (value.mode !== 'global' && value.mode !== 'filtered' && value.mode !== 'mirror')
    throw bad(`${at}.mode must be global, filtered or mirror`);
  // A key written into the cluster would be readable by everyone who reads the workload.
  if ('personalKey' in value) throw bad(`${at}.personalKey must not be recorded`);
  if (!Array.isArray(value.headers) || value.headers.length > 32)
    throw bad(`${at}.headers must be a list of at most 32 header matches`);
  const headers = value.headers.map((h, i) => {
    if (!isObject(h) || typeof h.name !== 'string' || !HEADER_NAME.test(h.name))
      throw bad(`${at}.headers[${i}].name must be a lower-case header name`);
    if (typeof h.value !== 'string' || h.value.length > 1024)
      throw bad(`${at}.headers[${i}].value must be a string of at most 1024 characters`);
    if (h.regex !== undefined && typeof h.regex !== 'boolean')
      throw bad(`${at}.headers[${i}].regex must be a boolean`);
    return { name: h.name, value: h.value, ...(h.regex ? { regex: true } : {}) };
  });
  const route: RecordedRoute = { mode: value.mode, headers };
  if (value.pathPrefix !== undefined) {
    if (typeof value.pathPrefix !== 'string' || !/^\/[^\s?#]{0,1023}$/.test(value.pathPrefix))
      throw bad(`${at}.pathPrefix must be a path starting with /`);
    route.pathPrefix = value.pathPrefix;
  }
  if (value.personal !== undefined) {
    if (typeof value.personal !== 'boolean') throw bad(`${at}.personal must be a boolean`);
    if (value.personal) route.personal = true;
  }
  if (route.mode === 'global' && (headers.length || route.pathPrefix !== undefined || route.personal))
    throw bad(`${at}: a global route has no filter`);
  return route;
}

/**
 * Checks a workload's `devbox.dev/original` record (parsed JSON) and returns it. `kind`
 * is the workload's own.
 */
export function checkWorkloadRecord(value: unknown, kind: string, what: string): void {
  const bad = (problem: string) => tamperedRecord(ANNOTATION_ORIGINAL, what, problem);
  if (!isObject(value)) throw bad('expected an object');
  if (value.v !== 1) throw bad(`v must be 1, found ${JSON.stringify(value.v)}`);
  if (value.kind !== kind) throw bad(`kind must be ${kind}, found ${JSON.stringify(value.kind)}`);
  const spec = value.spec;
  const template = isObject(spec) && isObject(spec.template) ? spec.template : undefined;
  const containers = isObject(template?.spec) ? template.spec.containers : undefined;
  if (!Array.isArray(containers) || !containers.every((c) => isObject(c) && typeof c.name === 'string'))
    throw bad('spec.template.spec.containers must be a list of named containers');
  const names = containers.map((c) => (c as { name: string }).name);
  if (names.includes(AGENT_CONTAINER))
    throw bad(`spec must be the workload before devbox, without ${AGENT_CONTAINER}`);

  const agent = value.agent;
  if (!isObject(agent)) throw bad('agent must be an object');
  if (agent.container !== AGENT_CONTAINER)
    throw bad(`agent.container must be "${AGENT_CONTAINER}", found ${JSON.stringify(agent.container)}`);
  // Exactly the bundle volume: fewer would leave it in the restored pods, pointing at a ConfigMap down deletes.
  if (!Array.isArray(agent.volumes) || agent.volumes.length !== 1 || agent.volumes[0] !== AGENT_BUNDLE_VOLUME)
    throw bad(`agent.volumes must be ["${AGENT_BUNDLE_VOLUME}"], found ${JSON.stringify(agent.volumes)}`);

  if (value.app !== undefined) checkAppFields(value.app, containers as V1Container[], bad);

  if (
    !Array.isArray(value.services) ||
    !value.services.every((s) => typeof s === 'string' && /^[a-z0-9.-]{1,253}$/.test(s))
  )
    throw bad('services must be a list of Service names');
}

/**
 * `app.fields` are put back from the stored spec where they still read as written: they
 * may only be fields devbox changes, differing from the original only where a port
 * name was handed to the agent (a port entry's `name`, a probe's or hook's `port`).
 */
function checkAppFields(
  app: unknown,
  containers: V1Container[],
  bad: (problem: string) => DevboxError,
): void {
  if (!isObject(app) || typeof app.container !== 'string' || !isObject(app.fields))
    throw bad('app must name a container and its fields');
  if (app.container === AGENT_CONTAINER) throw bad(`app.container must not be ${AGENT_CONTAINER}`);
  const before = containers.find((c) => c.name === app.container);
  if (!before) throw bad(`app.container "${app.container}" is not a container of spec`);
  for (const [key, written] of Object.entries(app.fields)) {
    if (!HANDED_OVER_FIELDS.includes(key)) throw bad(`app.fields.${key} is not a field devbox changes`);
    const original = (before as unknown as Record_)[key];
    for (const path of differingPaths(original, written)) {
      const name = path.endsWith('.name') && key === 'ports';
      const port = path.endsWith('.port') && key !== 'ports';
      if (!name && !port)
        throw bad(`app.fields.${key} differs from spec at ${path}, not only in a port name`);
    }
  }
}

const isPort = (p: unknown) => Number.isInteger(p) && (p as number) >= 1 && (p as number) <= 65535;

function isServicePort(p: unknown): boolean {
  return (
    isObject(p) &&
    isPort(p.port) &&
    (p.targetPort === undefined ||
      isPort(p.targetPort) ||
      (typeof p.targetPort === 'string' &&
        /^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$|^\d{1,5}$/.test(p.targetPort)))
  );
}

/** Checks a Service's `devbox.dev/original` record (parsed JSON). */
export function checkServiceRecord(value: unknown, what: string): void {
  const bad = (problem: string) => tamperedRecord(ANNOTATION_ORIGINAL, what, problem);
  if (!isObject(value)) throw bad('expected an object');
  if (value.v !== 1) throw bad(`v must be 1, found ${JSON.stringify(value.v)}`);
  if (!isObject(value.spec) || !Array.isArray(value.spec.ports) || !value.spec.ports.every(isServicePort))
    throw bad('spec.ports must be a list of Service ports (port 1-65535, targetPort a port or a name)');
  if (typeof value.workload !== 'string' || !/^(deployment|statefulset)\/[a-z0-9.-]+$/.test(value.workload))
    throw bad('workload must be deployment/<name> or statefulset/<name>');
  if (
    !Array.isArray(value.ports) ||
    !value.ports.every(
      (p) =>
        isObject(p) &&
        Number.isInteger(p.port) &&
        (p.port as number) >= 1 &&
        (p.port as number) <= 65535 &&
        typeof p.protocol === 'string' &&
        (typeof p.targetPort === 'string' || Number.isInteger(p.targetPort)),
    )
  )
    throw bad('ports must list {port, protocol, targetPort}');
}

/** Parses a `devbox.dev/original` annotation; the version check comes first, with its own message. */
export function parseOriginalRecord(raw: string, what: string): unknown {
  return parseJson(raw, ANNOTATION_ORIGINAL, what);
}
