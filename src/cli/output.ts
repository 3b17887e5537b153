/**
 * How the CLI talks: results on stdout (text or one JSON object), progress and
 * errors on stderr, and an exit code that tells errors apart.
 */
import { type ErrorCode, errorText, isDevboxError } from '../util/errors.js';

export type OutputFormat = 'text' | 'json';

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

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Prints an error the way users should see it and returns the exit code. */
export function reportError(err: unknown, format: OutputFormat = 'text'): number {
  if (isDevboxError(err)) {
    if (format === 'json') {
      process.stdout.write(
        `${JSON.stringify({ error: { code: err.code, message: err.message, hint: err.hint } })}\n`,
      );
    }
    process.stderr.write(`error: ${err.message}\n`);
    if (err.hint) process.stderr.write(`  ${err.hint.split('\n').join('\n  ')}\n`);
    if (process.env.DEVBOX_DEBUG && err.cause) process.stderr.write(`  cause: ${errorText(err.cause)}\n`);
    return exitCodes[err.code];
  }
  process.stderr.write(`error: ${errorText(err)}\n`);
  if (process.env.DEVBOX_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return 1;
}

/** Collects a repeatable option (`-e A=1 -e B=2`). */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function outputFormat(
  value: string | undefined,
  allowed: readonly string[] = ['text', 'json'],
): string {
  const format = value ?? allowed[0]!;
  if (!allowed.includes(format)) {
    throw new Error(`-o must be one of ${allowed.join(', ')} (got "${format}")`);
  }
  return format;
}
