/**
 * Finding and reading a project's devcontainer.json the way the Dev Containers
 * tools do (`.devcontainer/devcontainer.json`, `.devcontainer.json`, or one of
 * `.devcontainer/<name>/devcontainer.json`), with every problem that would stop
 * devbox reported before anything is started.
 */
import { promises as fs } from 'node:fs';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { DevboxError, errorText } from '../util/errors.js';
import { type JsoncDocument, locate, parseJsonc } from './jsonc.js';

/** The subset of devcontainer.json devbox reads or rewrites; other properties pass through untouched. */
export interface DevcontainerConfig {
  name?: string;
  image?: string;
  build?: { dockerfile?: string; context?: string; [key: string]: unknown };
  /** Old spelling of build.dockerfile. */
  dockerFile?: string;
  dockerComposeFile?: string | string[];
  appPort?: number | string | (number | string)[];
  runArgs?: string[];
  containerEnv?: Record<string, string>;
  features?: Record<string, unknown>;
  workspaceFolder?: string;
  workspaceMount?: string;
  mounts?: unknown[];
  initializeCommand?: unknown;
  [key: string]: unknown;
}

/** A devcontainer.json found and parsed. */
export interface LoadedDevcontainer {
  /** Absolute path of the devcontainer.json. */
  configFile: string;
  /** The project folder it belongs to (what `devcontainer up --workspace-folder` takes). */
  workspaceFolder: string;
  config: DevcontainerConfig;
  doc: JsoncDocument;
}

const CONFIG_NAME = 'devcontainer.json';

async function isFile(path: string): Promise<boolean> {
  return (await fs.stat(path).catch(() => undefined))?.isFile() ?? false;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await fs.stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/** The folder above the nearest `.devcontainer` directory holding `file`, if any. */
function workspaceAbove(file: string): string | undefined {
  let dir = dirname(file);
  for (;;) {
    if (basename(dir) === '.devcontainer') return dirname(dir);
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * Where the devcontainer.json for `path` is (a project folder, a folder holding
 * a devcontainer.json, or the file itself) and which project folder it serves.
 * NOT_FOUND lists where it looked; several candidates are a BAD_INPUT naming them.
 */
export async function findDevcontainerConfig(
  path: string,
  cwd: string = process.cwd(),
): Promise<{ configFile: string; workspaceFolder: string }> {
  const target = resolve(cwd, path);
  if (await isFile(target)) {
    const base = basename(target);
    const workspaceFolder =
      base === '.devcontainer.json' ? dirname(target) : (workspaceAbove(target) ?? dirname(target));
    return { configFile: target, workspaceFolder };
  }
  if (!(await isDirectory(target))) {
    throw new DevboxError('NOT_FOUND', `${target} does not exist`, {
      hint: 'Pass --devcontainer <project folder or devcontainer.json>; without a value it uses the current folder.',
    });
  }
  const candidates = [join(target, '.devcontainer', CONFIG_NAME), join(target, '.devcontainer.json')];
  for (const file of candidates) {
    if (await isFile(file)) return { configFile: file, workspaceFolder: target };
  }
  const inside = join(target, CONFIG_NAME);
  if (await isFile(inside)) return { configFile: inside, workspaceFolder: workspaceAbove(inside) ?? target };

  const nested: string[] = [];
  const sub = join(target, '.devcontainer');
  for (const entry of await fs.readdir(sub, { withFileTypes: true }).catch(() => [])) {
    const file = join(sub, entry.name, CONFIG_NAME);
    if (entry.isDirectory() && (await isFile(file))) nested.push(file);
  }
  if (nested.length === 1) return { configFile: nested[0]!, workspaceFolder: target };
  if (nested.length > 1) {
    throw new DevboxError('BAD_INPUT', `${target} has several dev container configurations`, {
      hint: `Choose one: ${nested.map((f) => `--devcontainer ${relative(cwd, f) || f}`).join(' or ')}`,
    });
  }
  const looked = [...candidates, inside, join(sub, `*${sep}${CONFIG_NAME}`)];
  throw new DevboxError('NOT_FOUND', `No devcontainer.json in ${target}`, {
    hint: `Looked for ${looked.join(', ')}.\nCreate one (\`devbox devcontainer init <workload>\` writes one that joins the workload's session), or pass the path of yours with --devcontainer <file>.`,
  });
}

/** Reads and checks the devcontainer.json for `path` (see `findDevcontainerConfig`). */
export async function loadDevcontainer(
  path: string,
  cwd: string = process.cwd(),
): Promise<LoadedDevcontainer> {
  const found = await findDevcontainerConfig(path, cwd);
  let text: string;
  try {
    text = await fs.readFile(found.configFile, 'utf8');
  } catch (err) {
    throw new DevboxError('BAD_INPUT', `Cannot read ${found.configFile}: ${errorText(err)}`, { cause: err });
  }
  const doc = parseJsonc(text, found.configFile);
  const config = doc.value as DevcontainerConfig;
  checkShape(doc, config);
  return { ...found, config, doc };
}

/** Type errors of the properties devbox relies on, all at once, each with its position. */
function checkShape(doc: JsoncDocument, config: DevcontainerConfig): void {
  const problems: string[] = [];
  const at = (path: (string | number)[], what: string) => problems.push(`${locate(doc, path)}: ${what}`);
  if (config.dockerComposeFile !== undefined) {
    at(
      ['dockerComposeFile'],
      'Docker Compose dev containers are not supported: devbox joins one container to the session; use "image" or "build" (with your compose services reached in the cluster instead)',
    );
  } else if (
    typeof config.image !== 'string' &&
    typeof config.build?.dockerfile !== 'string' &&
    typeof config.dockerFile !== 'string'
  ) {
    at([], 'set "image" or "build": { "dockerfile": … }');
  }
  if (config.runArgs !== undefined) {
    if (!Array.isArray(config.runArgs)) at(['runArgs'], '"runArgs" must be an array of strings');
    else
      config.runArgs.forEach((arg, i) => {
        if (typeof arg !== 'string') at(['runArgs', i], 'each "runArgs" entry must be a string');
      });
  }
  if (config.containerEnv !== undefined) {
    if (
      typeof config.containerEnv !== 'object' ||
      config.containerEnv === null ||
      Array.isArray(config.containerEnv)
    )
      at(['containerEnv'], '"containerEnv" must be an object of strings');
    else
      for (const [key, value] of Object.entries(config.containerEnv))
        if (typeof value !== 'string') at(['containerEnv', key], `containerEnv.${key} must be a string`);
  }
  const ports = config.appPort;
  if (ports !== undefined) {
    const list = Array.isArray(ports) ? ports : [ports];
    list.forEach((port, i) => {
      if (typeof port !== 'number' && typeof port !== 'string')
        at(
          Array.isArray(ports) ? ['appPort', i] : ['appPort'],
          '"appPort" entries must be numbers or strings',
        );
    });
  }
  if (problems.length) {
    throw new DevboxError('BAD_INPUT', `${doc.file} cannot be used:\n  ${problems.join('\n  ')}`, {
      hint: 'See https://containers.dev/implementors/json_reference/ for the properties.',
    });
  }
}
