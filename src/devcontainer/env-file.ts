/**
 * The pod's env reaches a dev container through `docker run --env-file`: the
 * docker CLI reads the file on this machine (so a remote engine works too)
 * and no secret appears on a command line or in the container's labels.
 * Files holding secrets are written 0600 and git-ignored where they stand.
 */
import { promises as fs } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/** Variables split by how they can travel. */
export interface EnvFileContent {
  /** `KEY=value` lines for `--env-file`. */
  text: string;
  /**
   * Variables the env-file format cannot carry (a value with a line break, a
   * name with spaces or starting with `#`): set them with `-e`/containerEnv.
   */
  rest: Record<string, string>;
}

/**
 * Docker's env-file format: one `KEY=value` per line, the value taken
 * verbatim to the end of the line; no quoting, no multi-line values.
 */
export function formatEnvFile(env: Record<string, string>): EnvFileContent {
  const lines: string[] = [];
  const rest: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (!key || /[\s=]/.test(key) || key.startsWith('#') || /[\r\n\0]/.test(value)) rest[key] = value;
    else lines.push(`${key}=${value}`);
  }
  return { text: lines.length ? `${lines.join('\n')}\n` : '', rest };
}

/**
 * Why a variable of `rest` is left out of a dev container: the only other way in is the Dev
 * Containers CLI's `docker run -e KEY=value`, which shows the value to every user of the machine
 * (`ps`) — and pod env values are often secrets.
 */
export function envLeftOutWarning(key: string): string {
  return `${key} is not passed to the dev container: its value (a line break) or its name cannot go into an env file, and the only other way is a docker run -e argument that ps shows; read it from the pod's volumes or set it yourself`;
}

/** Docker's label-file format (the same as the env file's). */
export function formatLabelFile(labels: Record<string, string>): string {
  return `${Object.entries(labels)
    .map(([k, v]) => `${k}=${v.replace(/[\r\n]/g, ' ')}`)
    .join('\n')}\n`;
}

/**
 * Adds `/<name>` to the `.gitignore` beside `file` unless an entry already
 * names it; creates the `.gitignore` when there is none.
 */
export async function gitIgnoreBeside(file: string): Promise<void> {
  const ignore = join(dirname(file), '.gitignore');
  const entry = `/${basename(file)}`;
  const current = await fs.readFile(ignore, 'utf8').catch(() => '');
  const entries = current.split('\n').map((l) => l.trim());
  if (entries.includes(entry) || entries.includes(basename(file))) return;
  const prefix = current && !current.endsWith('\n') ? '\n' : '';
  const header = current ? '' : "# Written by devbox: these files hold the pod's env (secrets included).\n";
  await fs.writeFile(ignore, `${current}${prefix}${header}${entry}\n`);
}

/**
 * Writes a file only its owner can read (0600, also when it already existed
 * with a wider mode), replacing it atomically, and git-ignores it beside it
 * (unless `gitIgnore` is false, for temporary files): a project that is not a
 * git repository yet may become one.
 */
export async function writePrivateFile(
  path: string,
  content: string,
  options: { gitIgnore?: boolean } = {},
): Promise<void> {
  await fs.mkdir(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  try {
    await fs.writeFile(temp, content, { mode: 0o600 });
    await fs.chmod(temp, 0o600);
    await fs.rename(temp, path);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
  if (options.gitIgnore !== false) await gitIgnoreBeside(path);
}
