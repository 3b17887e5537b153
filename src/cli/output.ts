/**
 * How the CLI talks: results on stdout (text or one JSON object), progress and
 * errors on stderr, and an exit code that tells errors apart.
 */
import { Option } from '@commander-js/extra-typings';
import { type ErrorCode, errorText, isDevboxError } from '../util/errors.js';
import { anyDebug } from '../util/log.js';

export type OutputFormat = 'text' | 'json';

/** `devbox doctor` found a check that failed: a result, not an error of devbox's own. */
export const EXIT_PROBLEMS_FOUND = 10;

const exitCodes: Record<ErrorCode, number> = {
  BAD_INPUT: 2,
  NOT_FOUND: 3,
  FORBIDDEN: 4,
  CONFLICT: 5,
  NO_DOCKER: 6,
  NO_CLUSTER: 7,
  TIMEOUT: 8,
  TUNNEL: 9,
  PROTOCOL: 9,
  INTERNAL: 1,
};

/** The exit codes as `devbox --help` and the README list them. */
export const EXIT_CODES_HELP = `Exit codes:
  0   done
  1   internal error (a bug, or something devbox did not expect)
  2   bad input: a flag, argument or DEVBOX_* setting to change (nothing was changed)
  3   not found (workload, container, image)
  4   forbidden (RBAC: see \`devbox doctor\`)
  5   conflict (the workload is in use, a port is taken)
  6   Docker does not answer
  7   the cluster does not answer
  8   timed out
  9   tunnel or protocol failure
  10  devbox doctor found problems
  128+n  the session ended on signal n (Ctrl-C: 130, terminal closed: 129); up in the
      foreground otherwise exits with the local container's own code`;

/** `-o/--output`, limited to `formats` (the first is the default). */
export function outputOption<const F extends readonly [string, ...string[]]>(formats: F) {
  return new Option('-o, --output <format>', 'output format').choices(formats).default<F[0]>(formats[0]);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints an error the way users should see it and returns the exit code. */
export function reportError(err: unknown, format: string = 'text'): number {
  if (isDevboxError(err)) {
    if (format === 'json') printJsonError(err.code, err.message, err.hint);
    process.stderr.write(`error: ${err.message}\n`);
    if (err.hint) process.stderr.write(`  ${err.hint.split('\n').join('\n  ')}\n`);
    if (anyDebug() && err.cause) process.stderr.write(`  cause: ${errorText(err.cause)}\n`);
    return exitCodes[err.code];
  }
  if (format === 'json') printJsonError('INTERNAL', errorText(err));
  process.stderr.write(`error: ${errorText(err)}\n`);
  if (anyDebug() && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return exitCodes.INTERNAL;
}

/**
 * A command line the parser refused (commander has printed its message on
 * stderr already): bad input, and a JSON error too when JSON was asked for.
 */
export function reportUsageError(message: string, format: string | undefined): number {
  if (format === 'json') printJsonError('BAD_INPUT', message.replace(/^error: /, ''));
  return exitCodes.BAD_INPUT;
}

function printJsonError(code: ErrorCode, message: string, hint?: string): void {
  process.stdout.write(`${JSON.stringify({ error: { code, message, ...(hint ? { hint } : {}) } })}\n`);
}

/** Collects a repeatable option (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
