/**
 * Renews the session's Lease while the sidecar lives (see util/session-lease.ts), so
 * `devbox clean` run anywhere leaves this session alone. A renewal that fails is
 * retried at the next tick; a Lease that is gone (the session was ended by `down` or a
 * forced `clean`) stops the renewals.
 */

import { type ApiTransport, KubeApiError } from '../kube/api/index.js';
import { errorText } from '../util/errors.js';
import type { Logger } from '../util/log.js';
import { LEASE_RENEW_MS, microTime } from '../util/session-lease.js';

export interface LeaseRenewer {
  /** Time of the last renewal that landed, if any. */
  lastRenewal(): Date | undefined;
  stop(): void;
}

export function renewLease(options: {
  api: Pick<ApiTransport, 'request'>;
  namespace: string;
  name: string;
  everyMs?: number;
  log?: Logger;
  onError?: (what: string, err: unknown) => void;
}): LeaseRenewer {
  const path = `/apis/coordination.k8s.io/v1/namespaces/${encodeURIComponent(options.namespace)}/leases/${encodeURIComponent(options.name)}`;
  const controller = new AbortController();
  let last: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  const tick = async () => {
    const now = new Date();
    try {
      await options.api.request('PATCH', path, {
        body: { spec: { renewTime: microTime(now) } },
        contentType: 'application/merge-patch+json',
        signal: controller.signal,
      });
      last = now;
    } catch (err) {
      if (controller.signal.aborted) return;
      if (err instanceof KubeApiError && err.status === 404) {
        options.log?.warn('session lease is gone; no longer renewing it', { lease: options.name });
        return;
      }
      options.onError?.('renewing the session lease', err);
      options.log?.warn('session lease not renewed', { lease: options.name, error: errorText(err) });
    }
    if (!controller.signal.aborted) timer = setTimeout(tick, options.everyMs ?? LEASE_RENEW_MS);
  };
  void tick();
  return {
    lastRenewal: () => last,
    stop() {
      controller.abort();
      clearTimeout(timer);
    },
  };
}
