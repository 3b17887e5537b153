/**
 * `devbox.yaml`: the workloads of a project, each with what `devbox up <workload>` takes on its
 * command line. It is checked against the JSON Schema devbox ships (`schema/devbox.schema.json`,
 * the same file editors complete from), then each value the way its flag is checked; every problem
 * is reported at once as `file:line:column: key: what is wrong`.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { LineCounter, parseDocument } from 'yaml';
import { parsePublishFlag, parseVolumeFlag } from '../docker/index.js';
import { routeFromFlags } from '../session/route-flags.js';
import { type OnChange, resolveSyncRules } from '../session/sync/rules.js';
import { DevboxError, errorText } from '../util/errors.js';
import { locate, pointerKeys } from './positions.js';
import type { WorkloadSettings } from './settings.js';

export const PROJECT_FILE = 'devbox.yaml';
/** The schema's place in the installed package, for `# yaml-language-server: $schema=…`. */
export const SCHEMA_FILE = new URL('../../../schema/devbox.schema.json', import.meta.url);

export interface ProjectFile {
  /** Absolute path of the file. */
  path: string;
  /** Its directory: the project that sync paths stay inside. */
  dir: string;
  namespace?: string;
  context?: string;
  /** By the name `devbox up <name>` takes, in the file's order. */
  workloads: Map<string, WorkloadSettings>;
}

/** The shape the schema admits, before the flag-level checks. */
interface RawWorkload {
  workload?: string;
  container?: string;
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[];
  env?: Record<string, string | number | boolean>;
  volumes?: string[];
  ports?: string[];
  workdir?: string;
  sync?: string[];
  onChange?: OnChange;
  name?: string;
  httpHeaders?: string[];
  httpPathPrefix?: string;
  personal?: boolean;
  mirror?: boolean;
}
interface RawFile {
  namespace?: string;
  context?: string;
  workloads: Record<string, RawWorkload | null>;
}

/** Reads `devbox.yaml` in `dir`; undefined when there is none. */
export async function findProjectFile(dir: string): Promise<ProjectFile | undefined> {
  const path = join(dir, PROJECT_FILE);
  const text = await fs.readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new DevboxError('BAD_INPUT', `${path}: cannot be read: ${err.message}`, { cause: err });
  });
  return text === undefined ? undefined : await parseProjectFile(text, path, dir, await loadSchema());
}

let schema: object | undefined;
async function loadSchema(): Promise<object> {
  schema ??= JSON.parse(await fs.readFile(SCHEMA_FILE, 'utf8')) as object;
  return schema;
}

/** Parses and checks the file's text; throws BAD_INPUT listing every problem with its position. */
export async function parseProjectFile(
  text: string,
  path: string,
  dir: string,
  jsonSchema: object,
): Promise<ProjectFile> {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (pos: { line: number; col: number } | undefined) =>
    pos ? `${path}:${pos.line}:${pos.col}` : path;
  if (doc.errors.length) {
    fail(
      path,
      doc.errors.map((e) => `${at(lines.linePos(e.pos[0]))}: ${e.message.split('\n')[0]}`),
    );
  }
  const data = doc.toJS() as unknown;
  const validate = new Ajv({
    allErrors: true,
    strict: true,
    allowUnionTypes: true,
    verbose: true,
  }).compile<RawFile>(jsonSchema);
  if (!validate(data)) {
    fail(
      path,
      schemaProblems(validate.errors ?? []).map(
        ({ keys, key, text }) => `${at(locate(doc.contents, keys, lines, key))}: ${text}`,
      ),
    );
  }
  const problems: string[] = [];
  const workloads = new Map<string, WorkloadSettings>();
  for (const [name, raw] of Object.entries(data.workloads)) {
    const report = (keys: (string | number)[], text: string) =>
      problems.push(
        `${at(locate(doc.contents, ['workloads', name, ...keys.map(String)], lines))}: ${['workloads', name, ...keys].join('.')}: ${text}`,
      );
    const settings = toSettings(name, raw ?? {}, report);
    workloads.set(name, settings);
    // Sync paths must exist inside the project: checked here so that the message names the line.
    for (const [i, flag] of settings.sync.entries()) {
      await resolveSyncRules([flag], dir).catch((err: unknown) => {
        for (const line of errorText(err).split('\n')) report(['sync', i], line);
      });
    }
  }
  if (problems.length) fail(path, problems);
  return {
    path,
    dir,
    ...(data.namespace ? { namespace: data.namespace } : {}),
    ...(data.context ? { context: data.context } : {}),
    workloads,
  };
}

function fail(path: string, problems: string[]): never {
  throw new DevboxError('BAD_INPUT', problems.join('\n'), {
    hint: `Fix ${path}; its schema is ${SCHEMA_FILE.pathname} (add \`# yaml-language-server: $schema=<that path>\` at its top for completion in editors).`,
  });
}

/** A workload of the file as the options its flags would give, each value checked as its flag is. */
function toSettings(
  name: string,
  raw: RawWorkload,
  report: (keys: (string | number)[], text: string) => void,
): WorkloadSettings {
  const check = <T>(keys: (string | number)[], value: T, parse: (v: T) => unknown) => {
    try {
      parse(value);
    } catch (err) {
      report(keys, errorText(err));
    }
  };
  for (const [i, p] of (raw.ports ?? []).entries()) check(['ports', i], p, parsePublishFlag);
  for (const [i, v] of (raw.volumes ?? []).entries()) check(['volumes', i], v, parseVolumeFlag);
  const filters = {
    headers: raw.httpHeaders ?? [],
    ...(raw.httpPathPrefix !== undefined ? { pathPrefix: raw.httpPathPrefix } : {}),
    personal: Boolean(raw.personal),
    mirror: Boolean(raw.mirror),
  };
  check(['httpHeaders'], filters, routeFromFlags);
  const build = typeof raw.build === 'string' ? { dir: raw.build } : raw.build && toBuild(raw.build);
  if (raw.onChange === 'rebuild' && !build)
    report(['onChange'], 'rebuild needs `build` (the image to rebuild)');
  if (raw.onChange && !raw.sync?.length) report(['onChange'], 'goes with `sync` (what changes)');
  if (raw.image && build) report(['image'], 'give either `image` or `build`, not both');
  return {
    workload: raw.workload ?? name,
    ...(raw.container ? { container: raw.container } : {}),
    ...(raw.image ? { image: raw.image } : {}),
    ...(build ? { build } : {}),
    command: raw.command ?? [],
    env: Object.entries(raw.env ?? {}).map(([k, v]) => `${k}=${v}`),
    volumes: raw.volumes ?? [],
    publish: raw.ports ?? [],
    ...(raw.workdir ? { workdir: raw.workdir } : {}),
    sync: raw.sync ?? [],
    ...(raw.onChange ? { onChange: raw.onChange } : {}),
    ...(raw.name ? { name: raw.name } : {}),
    filters,
  };
}

function toBuild(build: { context: string; dockerfile?: string }): { dir: string; dockerfile?: string } {
  return { dir: build.context, ...(build.dockerfile ? { dockerfile: build.dockerfile } : {}) };
}

/** What the string patterns of the schema stand for, by the key they check. */
const PATTERN_MEANING: Record<string, string> = {
  namespace: 'a Kubernetes namespace name (lowercase letters, digits, -)',
  workloads: 'a lowercase name (letters, digits, - and .)',
  workload: 'a Deployment or StatefulSet name, or kind/name (deploy/api, sts/db)',
  env: 'a variable name (letters, digits, _, . and -, not starting with a digit)',
  volumes: 'src:dst[:ro] with an absolute dst',
  workdir: 'an absolute path',
  name: 'a session name (lowercase letters, digits and -, at most 32)',
  httpHeaders: 'NAME=VALUE or NAME=/regex/',
  httpPathPrefix: 'a path starting with /',
  sync: 'LOCAL:CONTAINER with an absolute CONTAINER, e.g. src:/app/src',
};

interface SchemaProblem {
  keys: string[];
  /** A key of the object at `keys` that the problem is about (unknown, misnamed). */
  key?: string;
  text: string;
}

/** Ajv's errors as `key.path: what is wrong`, one per problem. */
export function schemaProblems(errors: readonly ErrorObject[]): SchemaProblem[] {
  const out: SchemaProblem[] = [];
  for (const e of errors) {
    const keys = pointerKeys(e.instancePath);
    const dotted = (k: string[]) => k.join('.') || '(top level)';
    const field = [...keys].reverse().find((k) => !/^\d+$/.test(k)) ?? '';
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String(e.params.additionalProperty);
        const known = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
        out.push({
          keys,
          key,
          text: `${dotted([...keys, key])}: unknown key${known.length ? ` (known: ${known.filter((k) => k !== '$schema').join(', ')})` : ''}`,
        });
        break;
      }
      case 'propertyNames':
        break; // reported by the failing check inside it, which names the key
      case 'pattern':
        if (e.propertyName !== undefined) {
          out.push({
            keys,
            key: e.propertyName,
            text: `${dotted([...keys, e.propertyName])}: the key must be ${PATTERN_MEANING[field] ?? `like ${e.params.pattern}`}`,
          });
        } else {
          out.push({
            keys,
            text: `${dotted(keys)}: must be ${PATTERN_MEANING[field] ?? `like ${e.params.pattern}`}`,
          });
        }
        break;
      case 'enum':
        out.push({
          keys,
          text: `${dotted(keys)}: must be one of ${(e.params.allowedValues as string[]).join(', ')}`,
        });
        break;
      case 'type': {
        const types = ([] as string[]).concat(e.params.type as string | string[]).filter((t) => t !== 'null');
        out.push({ keys, text: `${dotted(keys)}: must be ${types.map(article).join(' or ')}` });
        break;
      }
      case 'required':
        out.push({ keys, text: `${dotted(keys)}: missing key ${String(e.params.missingProperty)}` });
        break;
      default:
        out.push({ keys, text: `${dotted(keys)}: ${e.message ?? e.keyword}` });
    }
  }
  return out;
}

function article(type: string): string {
  return type === 'object' ? 'a map' : type === 'array' ? 'a list' : `a ${type}`;
}
