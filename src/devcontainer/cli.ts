/**
 * The Dev Containers CLI (`@devcontainers/cli`) has no library API: devbox
 * runs its `devcontainer` command as a child process with `--log-format json`,
 * reads the one JSON result line from stdout and keeps the tail of the log
 * for error messages. This is the only code that knows how it is invoked.
 */
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, dirname, join } from 'node:path';
import { DevboxError } from '../util/errors.js';
import { debugLogger } from '../util/log.js';

const log = debugLogger('devcontainer');

/** Which configuration `devcontainer` reads, and how it finds its container. */
export interface CliTarget {
  workspaceFolder: string;
  configFile: string;
  /** A complete devcontainer.json used instead of `configFile` (relative paths still resolve against `configFile`). */
  overrideConfig?: string;
  /** Labels set on the container and used to find it again. */
  idLabels: Record<string, string>;
}

export interface CliUpOptions extends CliTarget {
  /** Create and start the container but run no lifecycle command (see `runUserCommands`). */
  skipPostCreate?: boolean;
  /** `--mount-workspace-git-root` (the CLI's default is true). */
  mountWorkspaceGitRoot?: boolean;
}

export interface CliUpResult {
  containerId: string;
  remoteUser: string;
  remoteWorkspaceFolder: string;
}

export interface CliRunOptions {
  signal?: AbortSignal;
  /** Each line of the CLI's log (build output included), for progress or debugging. */
  onOutput?: (line: string) => void;
}

/** What devbox asks of the Dev Containers CLI. */
export interface DevcontainerCli {
  /** `devcontainer up`: builds the image (features included), creates and starts the container. */
  up(options: CliUpOptions, run?: CliRunOptions): Promise<CliUpResult>;
  /** `devcontainer run-user-commands`: the lifecycle commands, after `up` with `skipPostCreate`. */
  runUserCommands(target: CliTarget & { containerId: string }, run?: CliRunOptions): Promise<void>;
}

export interface CliOptions {
  /** The `devcontainer.js` to run (default: the installed `@devcontainers/cli`). */
  cliPath?: string;
  /** The docker CLI the Dev Containers CLI runs (default: `docker` on PATH). */
  dockerPath?: string;
  env?: NodeJS.ProcessEnv;
  /** Where temporary files go (the docker wrapper); the caller removes it. */
  workDir: string;
}

/** Path of the installed `devcontainer.js`. */
export function installedCliPath(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('@devcontainers/cli/package.json')), 'devcontainer.js');
}

/** Finds an executable on PATH, as a shell would. */
export async function findOnPath(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string | undefined> {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const path = join(dir, name);
    try {
      await fs.access(path, fs.constants.X_OK);
      return path;
    } catch {}
  }
  return undefined;
}

/**
 * The legacy builder (Docker without buildx) keeps the container of a failed
 * RUN step unless `--force-rm` is given, and the Dev Containers CLI does not
 * give it: a wrapper adds it so a failed build leaves no container behind.
 * BuildKit (`docker buildx build`) passes through untouched.
 */
export async function writeDockerWrapper(dir: string, docker: string): Promise<string> {
  const path = join(dir, 'docker');
  const quoted = `'${docker.replace(/'/g, `'\\''`)}'`;
  const script = `#!/bin/sh
if [ "$1" = build ]; then shift; exec ${quoted} build --force-rm "$@"; fi
exec ${quoted} "$@"
`;
  await fs.writeFile(path, script, { mode: 0o700 });
  return path;
}

/** Arguments shared by `up` and `run-user-commands`. */
export function targetArgs(target: CliTarget): string[] {
  const args = ['--workspace-folder', target.workspaceFolder, '--config', target.configFile];
  if (target.overrideConfig) args.push('--override-config', target.overrideConfig);
  for (const [key, value] of Object.entries(target.idLabels)) args.push('--id-label', `${key}=${value}`);
  return args;
}

/** `devcontainer up` arguments. */
export function upArgs(options: CliUpOptions): string[] {
  const args = ['up', ...targetArgs(options), '--log-format', 'json'];
  if (options.skipPostCreate) args.push('--skip-post-create');
  if (options.mountWorkspaceGitRoot === false) args.push('--mount-workspace-git-root', 'false');
  return args;
}

/** The CLI's result line (the last JSON object with an `outcome` on stdout). */
export function parseResult(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('{'));
  for (const line of lines.reverse()) {
    try {
      const value = JSON.parse(line) as Record<string, unknown>;
      if (typeof value.outcome === 'string') return value;
    } catch {}
  }
  return undefined;
}

/** Text of one `--log-format json` line: build output and messages, without the CLI's step markers. */
export function logText(line: string): string | undefined {
  try {
    const entry = JSON.parse(line) as { type?: string; text?: string };
    if (entry.type !== 'text' && entry.type !== 'raw') return undefined;
    // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal colour codes in build output
    return entry.text?.replace(/\u001b\[[0-9;]*m/g, '').replace(/\r/g, '');
  } catch {
    return line;
  }
}

/** The last meaningful lines of a log, for an error message. */
export function logTail(lines: readonly string[], count = 15): string[] {
  const banner =
    /^DEPRECATED: The legacy builder|^\s+(Install the buildx|https:\/\/docs\.docker\.com\/go\/buildx)/;
  // The CLI's own stack trace of the command that failed says nothing the build output does not.
  const rethrow = /^\s+at |^Error: Command failed: /;
  const useful = lines
    .flatMap((l) => l.split('\n'))
    .map((l) => l.trimEnd())
    .filter((l) => l.trim() && !banner.test(l) && !rethrow.test(l));
  return useful.slice(-count);
}

/** The Dev Containers CLI run as a child process. */
export function devcontainerCli(options: CliOptions): DevcontainerCli {
  let dockerPath: Promise<string | undefined> | undefined;
  const docker = () => {
    dockerPath ??= (async () => {
      if (process.platform === 'win32') return options.dockerPath;
      const real = options.dockerPath ?? (await findOnPath('docker', options.env));
      if (!real) return undefined;
      return writeDockerWrapper(options.workDir, real);
    })();
    return dockerPath;
  };

  // The CLI keeps a copy of every Feature it builds under $TMPDIR/devcontainercli-<user> and
  // never removes it; in the work directory it goes away with the rest.
  let tmp: Promise<string> | undefined;
  const run = async (args: string[], what: string, opts: CliRunOptions = {}) => {
    const path = await docker();
    tmp ??= fs
      .mkdir(join(options.workDir, 'tmp'), { recursive: true })
      .then(() => join(options.workDir, 'tmp'));
    const full = [...args, ...(path ? ['--docker-path', path] : [])];
    return runCli(options.cliPath ?? installedCliPath(), full, what, {
      ...opts,
      env: { ...(options.env ?? process.env), TMPDIR: await tmp },
    });
  };

  return {
    async up(up, opts) {
      const result = await run(upArgs(up), 'devcontainer up', opts);
      const containerId = String(result.containerId ?? '');
      if (!containerId) throw new DevboxError('INTERNAL', 'devcontainer up reported no container id');
      return {
        containerId,
        remoteUser: String(result.remoteUser ?? ''),
        remoteWorkspaceFolder: String(result.remoteWorkspaceFolder ?? ''),
      };
    },
    async runUserCommands(target, opts) {
      await run(
        [
          'run-user-commands',
          ...targetArgs(target),
          '--container-id',
          target.containerId,
          '--log-format',
          'json',
        ],
        'devcontainer run-user-commands',
        opts,
      );
    },
  };
}

async function runCli(
  cliPath: string,
  args: string[],
  what: string,
  options: CliRunOptions & { env: NodeJS.ProcessEnv },
): Promise<Record<string, unknown>> {
  options.signal?.throwIfAborted();
  log.debug('running', { cli: cliPath, args });
  const child = spawn(process.execPath, [cliPath, ...args], {
    env: options.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  const lines: string[] = [];
  let partial = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop() ?? '';
    for (const line of parts) {
      const text = logText(line);
      if (text === undefined) continue;
      lines.push(text);
      if (lines.length > 400) lines.splice(0, lines.length - 400);
      log.debug(text.trimEnd());
      options.onOutput?.(text);
    }
  });
  const onAbort = () => {
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  }).finally(() => options.signal?.removeEventListener('abort', onAbort));
  options.signal?.throwIfAborted();
  const result = parseResult(stdout);
  if (result?.outcome === 'success' && code === 0) return result;
  const tail = logTail(lines);
  const message = String(result?.message ?? '');
  const description = String(result?.description ?? (result ? '' : `it exited with code ${code}`));
  log.debug('failed', { what, code, result, tail });
  throw new DevboxError('BAD_INPUT', `${what} failed: ${cliSummary(description, message, tail)}`, {
    hint: tail.length
      ? `Last lines of its output:\n  ${tail.join('\n  ')}`
      : 'Run it with DEVBOX_DEBUG=devcontainer to see its whole output.',
    cause: new Error(`${description} ${message}`.trim()),
  });
}

/** One line saying why the CLI failed: its description, or the most telling line of its output. */
export function cliSummary(description: string, message: string, tail: readonly string[]): string {
  const telling = [...tail]
    .reverse()
    .find((l) => /error|failed|returned a non-zero code|not found|denied/i.test(l));
  const parts = [description.replace(/\.$/, '')];
  if (telling) parts.push(telling.trim());
  else if (message && !message.startsWith('Command failed')) parts.push(message);
  return parts.filter(Boolean).join(': ') || 'no reason given';
}
