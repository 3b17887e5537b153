/**
 * Renews the sidecar's own token before it expires, for as long as the sidecar lives: a detached
 * session has no CLI left to do it. Each new token is asked for the sidecar's account, bound to
 * the session's Secret like the first one (so `down`, which deletes that Secret, revokes every
 * token of the session at once), and written to the token file, which every API request re-reads.
 * A failed renewal is retried every 30 s until the current token runs out.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { type ApiTransport, KubeApiError } from '../kube/api/index.js';
import { errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import type { TokenRefresh } from './config.js';

/** A token is renewed once this share of its lifetime has passed. */
const RENEW_AT = 0.8;
const RETRY_MS = 30_000;

export interface TokenRefresher {
  /** Expiry of the token in the file now. */
  expiresAt(): string;
  stop(): void;
}

export function refreshToken(options: {
  api: Pick<ApiTransport, 'request'>;
  namespace: string;
  refresh: TokenRefresh;
  tokenFile: string;
  log?: Logger;
  onError?: (what: string, err: unknown) => void;
  /** For tests: when to renew, given the current token's issue and expiry times (ms). */
  renewDelay?: (issuedAt: number, expiresAt: number) => number;
  retryMs?: number;
}): TokenRefresher {
  const { refresh, namespace } = options;
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/serviceaccounts/${encodeURIComponent(refresh.account)}/token`;
  const delay =
    options.renewDelay ??
    ((issuedAt, expiresAt) => Math.max(0, issuedAt + (expiresAt - issuedAt) * RENEW_AT - Date.now()));
  const controller = new AbortController();
  let expiresAt = refresh.expiresAt;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (ms: number) => {
    if (controller.signal.aborted) return;
    timer = setTimeout(() => void renew(), ms);
    timer.unref();
  };
  const renew = async () => {
    try {
      const answer = (await options.api.request('POST', path, {
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: {
            expirationSeconds: refresh.expirationSeconds,
            boundObjectRef: {
              apiVersion: 'v1',
              kind: 'Secret',
              name: refresh.secret,
              uid: refresh.secretUid,
            },
          },
        },
        signal: controller.signal,
      })) as { status?: { token?: string; expirationTimestamp?: string } };
      const token = answer.status?.token;
      const until = answer.status?.expirationTimestamp;
      if (!token || !until) throw new Error('the TokenRequest answer holds no token');
      writeAtomically(options.tokenFile, token);
      const issuedAt = Date.now();
      expiresAt = until;
      options.log?.info('token renewed', { expiresAt });
      schedule(delay(issuedAt, Date.parse(until)));
    } catch (err) {
      if (controller.signal.aborted) return;
      if (err instanceof KubeApiError && (err.status === 401 || err.status === 404)) {
        // The session's Secret (or the account) is gone: the session was ended; nothing to renew.
        options.log?.warn('token not renewed: the session has ended', { error: errorText(err) });
        return;
      }
      options.onError?.('renewing the sidecar token', err);
      options.log?.warn('token not renewed; retrying', { error: errorText(err), expiresAt });
      schedule(options.retryMs ?? RETRY_MS);
    }
  };
  // The first token was minted by `up` just before the sidecar started.
  const first = Date.parse(refresh.expiresAt);
  schedule(delay(first - refresh.expirationSeconds * 1000, first));
  return {
    expiresAt: () => expiresAt,
    stop() {
      controller.abort();
      clearTimeout(timer);
    },
  };
}

/** The token file is read on every request: it must never be seen half-written. */
function writeAtomically(file: string, content: string): void {
  const temporary = `${file}.next`;
  writeFileSync(temporary, content, { mode: 0o600 });
  renameSync(temporary, file);
}
