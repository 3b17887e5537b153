/**
 * API server failures as DevboxErrors, for the CLI and the sidecar alike: the server's
 * own message, a stable code, and a hint naming what to change.
 */
import { DevboxError, type ErrorCode, errorText } from '../../util/errors.js';

/** A non-2xx answer of the API server. */
export class KubeApiError extends DevboxError {
  /** HTTP status. */
  readonly status: number;
  /** `reason` of the Status object (NotFound, Forbidden, Conflict, Expired, …). */
  readonly reason: string | undefined;

  constructor(status: number, reason: string | undefined, message: string, options: { hint?: string } = {}) {
    super(codeForStatus(status), message, options);
    this.name = 'KubeApiError';
    this.status = status;
    this.reason = reason;
  }
}

function codeForStatus(status: number): ErrorCode {
  if (status === 401 || status === 403) return 'FORBIDDEN';
  if (status === 404) return 'NOT_FOUND';
  if (status === 409 || status === 410) return 'CONFLICT';
  if (status === 400 || status === 422) return 'BAD_INPUT';
  if (status === 408 || status === 504) return 'TIMEOUT';
  return 'INTERNAL';
}

/** Where a request went, for messages. */
export interface RequestContext {
  server: string;
  /** Whose credentials, as a phrase: `context "kind-dev"`, `the sidecar's token`. */
  context: string;
  method: string;
  path: string;
  hints?: ErrorHints;
}

/** What to tell the user to change when the server refuses the credentials. */
export interface ErrorHints {
  /** 401: the credentials themselves. */
  unauthorized?: string;
  /** 403: the permissions of whoever they name. */
  forbidden?: string;
}

export const RBAC_TEMPLATE = 'templates/rbac/devbox-developer-role.yaml';

const kubeconfigHints: Required<ErrorHints> = {
  unauthorized: 'the token or certificate expired or is wrong: log in again or refresh the kubeconfig',
  forbidden: `ask for the devbox-developer Role in this namespace (${RBAC_TEMPLATE}); \`devbox doctor\` lists what is missing`,
};

/** The error for an HTTP answer with status >= 300; `body` is the raw response text. */
export function apiError(status: number, body: string, ctx: RequestContext): KubeApiError {
  let message = '';
  let reason: string | undefined;
  try {
    const s = JSON.parse(body) as { message?: string; reason?: string };
    message = s.message ?? '';
    reason = s.reason;
  } catch {
    message = body.trim().slice(0, 300);
  }
  if (!message) message = `${ctx.method} ${ctx.path} answered ${status}`;
  if (status === 401) {
    return new KubeApiError(
      status,
      reason,
      `the cluster at ${ctx.server} rejected the credentials of ${ctx.context} (401 Unauthorized)`,
      { hint: ctx.hints?.unauthorized ?? kubeconfigHints.unauthorized },
    );
  }
  if (status === 403) {
    return new KubeApiError(status, reason, message, {
      hint: ctx.hints?.forbidden ?? kubeconfigHints.forbidden,
    });
  }
  if (status === 404) return new KubeApiError(status, reason, message, { hint: 'check the name and -n' });
  if (status === 409)
    return new KubeApiError(status, reason, message, {
      hint: 'the object changed meanwhile; run the command again',
    });
  return new KubeApiError(status, reason, message);
}

const unreachable = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'ECONNRESET',
  'EPIPE',
]);

function isTlsFailure(code: string): boolean {
  return (
    code.startsWith('ERR_TLS') ||
    code.startsWith('ERR_SSL') ||
    code.includes('CERT') ||
    code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' ||
    code === 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'
  );
}

/** Transport failures (nothing listening, DNS, TLS) and credential plugins failing. */
export function transportError(err: unknown, ctx: RequestContext): DevboxError {
  if (err instanceof DevboxError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  if (unreachable.has(code)) {
    return new DevboxError('NO_CLUSTER', `no cluster at ${ctx.server} (${ctx.context}): ${code}`, {
      hint: 'check --context and --kubeconfig, and that the cluster is running',
      cause: err,
    });
  }
  if (isTlsFailure(code)) {
    return new DevboxError('NO_CLUSTER', `TLS to ${ctx.server} failed: ${errorText(err)}`, {
      hint: `the certificate-authority of ${ctx.context} does not match the server's certificate`,
      cause: err,
    });
  }
  return new DevboxError('NO_CLUSTER', `${ctx.method} ${ctx.server}${ctx.path} failed: ${errorText(err)}`, {
    cause: err,
  });
}

/** Credentials could not be obtained (exec plugin, auth provider). */
export function credentialError(err: unknown, context: string): DevboxError {
  return new DevboxError(
    'FORBIDDEN',
    `could not get credentials for context "${context}": ${errorText(err)}`,
    {
      hint: 'the kubeconfig credential plugin failed; run `kubectl get ns` to see its own message',
      cause: err,
    },
  );
}
