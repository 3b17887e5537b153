import { DevboxError } from '../util/errors.js';

/** A stream the agent refused to open: carries the HTTP status and the remote errno name. */
export class StreamRefusedError extends DevboxError {
  /** HTTP status the agent answered with. */
  readonly status: number;
  /** Errno name from the agent side (ECONNREFUSED, ETIMEDOUT, ENOTFOUND, ...) or an HTTP reason. */
  readonly remoteCode: string;

  constructor(status: number, remoteCode: string, message: string) {
    super('TUNNEL', message);
    this.name = 'StreamRefusedError';
    this.status = status;
    this.remoteCode = remoteCode;
  }
}

/** Status and headers the agent sends for a failed dial. */
export interface DialFailure {
  status: number;
  code: string;
  message: string;
}

/** The agent refused to dial the target: a loopback or link-local address of the pod (status 403). */
export const FORBIDDEN_TARGET_CODE = 'EDEVBOXFORBIDDEN';

const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ECONNTIMEOUT']);

/** Maps a dial error (net/dgram/dns) to the answer sent to the sidecar. */
export function dialFailure(err: unknown, target: string): DialFailure {
  const code =
    typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : 'EUNKNOWN';
  const status = code === FORBIDDEN_TARGET_CODE ? 403 : TIMEOUT_CODES.has(code) ? 504 : 502;
  const reason =
    code === FORBIDDEN_TARGET_CODE && err instanceof Error
      ? err.message
      : code === 'ECONNREFUSED'
        ? 'connection refused'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'name not resolved'
          : TIMEOUT_CODES.has(code)
            ? 'connect timed out'
            : code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
              ? 'unreachable'
              : err instanceof Error
                ? err.message
                : String(err);
  return { status, code, message: `${target}: ${reason}` };
}
