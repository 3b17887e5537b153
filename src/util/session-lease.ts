/**
 * A session's Lease (coordination.k8s.io/v1, one per session, in the workload's
 * namespace): how anyone tells a live session from one left by a crash. `up` creates it
 * and renews it while it runs; the session's sidecar renews it for as long as it lives.
 * A Lease not renewed for LEASE_DURATION_SECONDS belongs to a dead session, which
 * `devbox clean` may end; a live one is left alone unless forced. Shared by the CLI and
 * the sidecar, so it imports nothing.
 */

/** A session whose Lease is older than this is dead. */
export const LEASE_DURATION_SECONDS = 20;
/** How often the holder renews: four tries before it would be taken for dead. */
export const LEASE_RENEW_MS = 5000;

/** The Lease of session `id`. */
export function sessionLeaseName(id: string): string {
  return `devbox-session-${id}`;
}

/** A Kubernetes MicroTime (RFC 3339 with six fractional digits), as Lease times are written. */
export function microTime(at: Date): string {
  return at.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
