/**
 * What `devbox up` takes per workload, whether it comes from `devbox.yaml` or from the command
 * line, and how the two combine: the command line adds to the file (lists and env) and wins over
 * it (single values).
 */
import type { RouteFlags } from '../session/route-flags.js';
import type { OnChange } from '../session/sync/rules.js';
import { DevboxError } from '../util/errors.js';
import type { ProjectFile } from './file.js';

export interface WorkloadSettings {
  /** Deployment or StatefulSet, as name or kind/name. */
  workload: string;
  container?: string;
  image?: string;
  build?: { dir: string; dockerfile?: string };
  command: string[];
  /** `KEY=value` (or `KEY`, this shell's value), as `-e` takes them. */
  env: string[];
  volumes: string[];
  publish: string[];
  workdir?: string;
  sync: string[];
  onChange?: OnChange;
  /** The session's name on the workload (`--name`). */
  name?: string;
  /** Which requests the session takes (`--http-header`, `--http-path-prefix`, `--personal`, `--mirror`). */
  filters: RouteFlags;
}

/** The command line's share of the settings: every field may be absent. */
export type FlagSettings = Partial<Omit<WorkloadSettings, 'workload' | 'filters'>> & {
  filters?: Partial<RouteFlags>;
};

export function combine(file: WorkloadSettings, flags: FlagSettings): WorkloadSettings {
  const build = flags.build ?? (flags.image ? undefined : file.build);
  const image = flags.image ?? (flags.build ? undefined : file.image);
  const container = flags.container ?? file.container;
  const workdir = flags.workdir ?? file.workdir;
  const onChange = flags.onChange ?? file.onChange;
  const name = flags.name ?? file.name;
  const pathPrefix = flags.filters?.pathPrefix ?? file.filters.pathPrefix;
  return {
    workload: file.workload,
    ...(container ? { container } : {}),
    ...(image ? { image } : {}),
    ...(build ? { build } : {}),
    command: flags.command?.length ? flags.command : file.command,
    env: [...file.env, ...(flags.env ?? [])],
    volumes: [...file.volumes, ...(flags.volumes ?? [])],
    publish: [...file.publish, ...(flags.publish ?? [])],
    ...(workdir ? { workdir } : {}),
    sync: [...file.sync, ...(flags.sync ?? [])],
    ...(onChange ? { onChange } : {}),
    ...(name ? { name } : {}),
    filters: {
      headers: [...file.filters.headers, ...(flags.filters?.headers ?? [])],
      ...(pathPrefix !== undefined ? { pathPrefix } : {}),
      personal: Boolean(flags.filters?.personal || file.filters.personal),
      mirror: Boolean(flags.filters?.mirror || file.filters.mirror),
    },
  };
}

/**
 * The workloads one `devbox up`/`down` acts on: those named (from the file when there is one,
 * else as given), or, with none named, every workload of the file.
 */
export function selectWorkloads(
  names: readonly string[],
  file: ProjectFile | undefined,
  flags: FlagSettings,
): WorkloadSettings[] {
  if (!file) {
    if (!names.length)
      throw new DevboxError('BAD_INPUT', 'Name a workload, or write a devbox.yaml listing them', {
        hint: 'e.g. `devbox up api`, or a devbox.yaml with `workloads: {api: {}, inventory: {}}` and `devbox up`.',
      });
    return unique(names).map((workload) => combine(bare(workload), flags));
  }
  const unknown = names.filter((n) => !file.workloads.has(n));
  if (unknown.length)
    throw new DevboxError('BAD_INPUT', `${file.path} lists no workload named ${unknown.join(', ')}`, {
      hint: `Its workloads: ${[...file.workloads.keys()].join(', ')}. Add the missing one to the file, or run from another directory.`,
    });
  const chosen = names.length ? unique(names) : [...file.workloads.keys()];
  return chosen.map((name) => combine(file.workloads.get(name)!, flags));
}

function bare(workload: string): WorkloadSettings {
  return {
    workload,
    command: [],
    env: [],
    volumes: [],
    publish: [],
    sync: [],
    filters: { headers: [], personal: false, mirror: false },
  };
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}
