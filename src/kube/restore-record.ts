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

/** Who holds a session, as `up` records it. */
export interface SessionRecord {
  user: string;
  host: string;
  startedAt: string;
  id: string;
  pid?: number;
}

/** The `devbox.dev/session` annotation of `what`, checked. */
export function parseSessionRecord(raw: string, what: string): SessionRecord {
  const value = parseJson(raw, ANNOTATION_SESSION, what);
  const bad = (problem: string) => tamperedRecord(ANNOTATION_SESSION, what, problem);
  if (!isObject(value)) throw bad(`expected an object, found ${JSON.stringify(value)}`);
  for (const field of ['user', 'host', 'startedAt', 'id'] as const) {
    if (typeof value[field] !== 'string') throw bad(`${field} must be a string`);
  }
  if (!/^[A-Za-z0-9-]{1,64}$/.test(value.id as string)) throw bad('id must be letters, digits and dashes');
  if ((value.startedAt as string) !== '' && Number.isNaN(Date.parse(value.startedAt as string)))
    throw bad('startedAt must be a time');
  if (value.pid !== undefined && !(Number.isSafeInteger(value.pid) && (value.pid as number) > 0))
    throw bad('pid must be a positive integer');
  return {
    user: value.user as string,
    host: value.host as string,
    startedAt: value.startedAt as string,
    id: value.id as string,
    ...(value.pid !== undefined ? { pid: value.pid as number } : {}),
  };
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
