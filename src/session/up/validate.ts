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
  assertNotIntercepted,
  assertPermissions,
  describeHolder,
  findWorkload,
  isSameHolder,
  pickContainer,
  type SessionHolder,
  sessionOf,
  type Workload,
} from '../../kube/index.js';
import { DevboxError } from '../../util/errors.js';
import { parseEnvFlags } from '../flags.js';
import { sidecarCredentials } from '../sidecar-account.js';
import type { UpContext, UpFlags, UpOptions, UpResult, Validated } from './types.js';

/** How long the sidecar's minted token lives. */
const SIDECAR_TOKEN_SECONDS = 12 * 3600;

/** The flags, parsed and checked; nothing is contacted yet. */
export async function validateFlags(options: UpOptions): Promise<UpFlags> {
  return {
    env: parseEnvFlags(options.env),
    publish: options.publish.map(parsePublishFlag),
    volumes: options.volumes.map(parseVolumeFlag),
    devcontainer: options.devcontainer && (await prepareDevcontainer(options.devcontainer.path)),
  };
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
    sidecarCredentials(client, options.target, namespace, SIDECAR_TOKEN_SECONDS),
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
  const holder = sessionOf(workload);
  assertFree(workload, holder);

  const local = await findSessions(docker, { workload: label, namespace });
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
      staleLocal: local,
      mounts,
      sidecarToken,
    },
  };
}

/**
 * CONFLICT unless this `up` may act on the workload: nobody holds it, or this user on this
 * machine does and the `up` that claimed it is no longer running (a crash, `down --keep-agent`).
 */
function assertFree(workload: Workload, holder: SessionHolder | undefined): void {
  if (!holder || !isSameHolder(holder, currentUser())) {
    assertNotIntercepted(workload);
    return;
  }
  if (holder.pid !== undefined && holder.pid !== process.pid && processRuns(holder.pid)) {
    const label = `${workload.kind.toLowerCase()}/${workload.metadata?.name}`;
    throw new DevboxError(
      'CONFLICT',
      `${label} is already in use by ${describeHolder(holder)}, whose devbox (process ${holder.pid}) still runs`,
      {
        hint: `end that session first (\`devbox down ${workload.metadata?.name}\`, or Ctrl-C where it runs)`,
      },
    );
  }
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
