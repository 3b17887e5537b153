/**
 * The one error type devbox shows to users. `code` is stable for scripts and
 * tests; `hint` says what to change. The cause keeps the low-level detail.
 */
export type ErrorCode =
  | 'BAD_INPUT'
  | 'NOT_FOUND'
  | 'FORBIDDEN'
  | 'CONFLICT'
  | 'NO_DOCKER'
  | 'NO_CLUSTER'
  | 'TIMEOUT'
  | 'TUNNEL'
  | 'PROTOCOL'
  | 'INTERNAL';

export class DevboxError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'DevboxError';
    this.code = code;
    this.hint = options.hint;
  }
}

export function isDevboxError(err: unknown, code?: ErrorCode): err is DevboxError {
  return err instanceof DevboxError && (code === undefined || err.code === code);
}

/** Text of any thrown value, for logs. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
