/**
 * The first stage of `up`: everything that can be checked is checked before anything changes —
 * the flags before any engine is contacted, then the permissions, the workload and who holds it,
 * and the sessions already on this Docker engine.
 */
import { promises as fs } from 'node:fs';
import { hostname, userInfo } from 'node:os';
import { prepareDevcontainer, type SidecarOnlyFiles } from '../../devcontainer/index.js';
import {
  findSessions,
  parsePublishFlag,
  parseVolumeFlag,
  resolveBindMounts,
  type SessionSummary,
} from '../../docker/index.js';
import {
  ANNOTATION_ORIGINAL,
  assertPermissions,
  defaultSessionName,
  describeHolder,
  findWorkload,
  pickContainer,
  SESSION_NAME,
  type SessionHolder,
  type SessionRecord,
  sessionsOf,
} from '../../kube/index.js';
import { DevboxError } from '../../util/errors.js';
import { admitSession } from '../admission.js';
import { parseEnvFlags } from '../flags.js';
import { recordedRoute, routeFromFlags } from '../route-flags.js';
import { sidecarCredentials } from '../sidecar-account.js';
import type { UpContext, UpFlags, UpOptions, UpResult, Validated } from './types.js';

/** The token minted to check the sidecar's permissions serves nothing else (the API server's minimum). */
const PROBE_TOKEN_SECONDS = 600;

/** The flags, parsed and checked; nothing is contacted yet. */
export async function validateFlags(options: UpOptions): Promise<UpFlags> {
  return {
    env: parseEnvFlags(options.env),
    publish: options.publish.map(parsePublishFlag),
    volumes: options.volumes.map(parseVolumeFlag),
    devcontainer: options.devcontainer && (await prepareDevcontainer(options.devcontainer.path)),
    route: routeFromFlags(options.filters ?? { headers: [], personal: false, mirror: false }),
    name: sessionName(options.name),
  };
}

/** `--name`, checked, or the one derived from the user's login. */
function sessionName(name: string | undefined): string {
  if (name === undefined) return defaultSessionName(currentUser().user);
  if (!SESSION_NAME.test(name))
    throw new DevboxError('BAD_INPUT', `--name ${JSON.stringify(name)} is not a session name`, {
      hint: 'use lower-case letters, digits and dashes (at most 32, e.g. --name alice-fix)',
    });
  return name;
}

/** Who runs this `up`, as recorded on the workload it holds. */
export function currentUser(): Pick<SessionHolder, 'user' | 'host'> {
  return { user: userInfo().username, host: hostname() };
}

/**
 * Reads what `up` acts on and refuses what it must not touch: a workload held by someone else,
 * a session of this workload already running here. A sidecar-only session whose sidecar still
 * runs is handed back as it is (`reused`).
 */
export async function validateTarget(
  ctx: UpContext,
  flags: UpFlags,
): Promise<{ validated: Validated } | { reused: UpResult }> {
  const { client, docker, options } = ctx;
  const namespace = client.namespace;
  await ctx.step(`Checking your permissions in ${namespace}`, () =>
    assertPermissions(client, namespace, 'up'),
  );
  const sidecarToken = await ctx.step(`Checking the sidecar's account in ${namespace}`, () =>
    sidecarCredentials(client, options.target, namespace, PROBE_TOKEN_SECONDS),
  );
  const { workload, services, app } = await ctx.step(
    `Finding ${options.workload} in ${namespace}`,
    async () => {
      const workload = await findWorkload(client, options.workload, namespace);
      const services = (await client.list('Service', namespace)).items;
      return { workload, services, app: pickContainer(workload, services, options.container) };
    },
  );
  const name = workload.metadata!.name!;
  const label = `${workload.kind.toLowerCase()}/${name}`;
  const sessions = sessionsOf(workload);
  const candidate = { name: flags.name, ...currentUser(), route: recordedRoute(flags.route) };
  const { replaces } = admitSession({ label, name, namespace }, sessions, candidate, isLeftover);
  assertSettled(label, workload, sessions, replaces);
  const holder = sessions[0];

  // This session's own containers: sessions of other names run beside it.
  const local = (await findSessions(docker, { workload: label, namespace })).filter(
    (s) => (s.name ?? defaultSessionName(currentUser().user)) === flags.name,
  );
  // A sidecar-only session whose files are gone is started again (once the workload is claimed).
  const live = options.sidecarOnly && local.find((s) => s.sidecar?.state === 'running');
  if (live && options.sidecarOnly && (await filesExist(options.sidecarOnly)))
    return { reused: reusedSidecar(live, label, namespace, client.cluster.context, options.sidecarOnly) };
  const running = local.find((s) => s.state !== 'stopped' && s !== live);
  if (running) {
    const who = holder && holder.id === running.id ? describeHolder(holder) : `session ${running.id}`;
    throw new DevboxError('CONFLICT', `${label} already runs locally: ${who}`, {
      hint: `see it with \`devbox status\`; end it with \`devbox down ${name} -n ${namespace}\``,
    });
  }
  const mounts = await resolveBindMounts(docker, flags.volumes);
  return {
    validated: {
      namespace,
      workload,
      label,
      name,
      services,
      app,
      holder,
      sessions,
      replaces,
      staleLocal: local,
      mounts,
      sidecarToken,
    },
  };
}

/** A session of this user's on this machine whose `up` no longer runs (a crash, `down --keep-agent` then a new `up`). */
export function isLeftover(s: SessionRecord): boolean {
  return s.pid === undefined || (s.pid !== process.pid && !processRuns(s.pid));
}

/**
 * CONFLICT while another session is still putting the agent in (its claim recorded, the agent
 * not yet): this one joins once that is done.
 */
export function assertSettled(
  label: string,
  workload: { metadata?: { annotations?: Record<string, string> } },
  sessions: readonly SessionRecord[],
  replaces: readonly string[],
): void {
  if (workload.metadata?.annotations?.[ANNOTATION_ORIGINAL] !== undefined) return;
  const starting = sessions.find((s) => !replaces.includes(s.id));
  if (!starting) return;
  throw new DevboxError('CONFLICT', `${label} is being set up by ${describeHolder(starting)}`, {
    hint: 'try again once its `devbox up` is ready; if it was interrupted, `devbox clean` ends it',
  });
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it runs, as another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when both files of a sidecar-only session exist. */
async function filesExist(files: SidecarOnlyFiles): Promise<boolean> {
  const exists = (p: string) =>
    fs.stat(p).then(
      () => true,
      () => false,
    );
  return (await exists(files.envFile)) && (await exists(files.labelFile));
}

/** A sidecar-only session already running: the editor's dev container joins it again. */
function reusedSidecar(
  live: SessionSummary,
  workload: string,
  namespace: string,
  context: string,
  files: SidecarOnlyFiles,
): UpResult {
  return {
    session: live.id,
    name: live.name ?? defaultSessionName(currentUser().user),
    route: { mode: 'global', headers: [] },
    filter: 'every request',
    workload,
    namespace,
    context,
    containers: {
      sidecar: live.sidecar?.name ?? '',
      service: live.service?.name ?? '',
      serviceId: live.service?.id ?? '',
    },
    intercepted: [],
    resumed: true,
    warnings: [`the sidecar of session ${live.id} already runs; it is reused with the env written before`],
    files,
  };
}
