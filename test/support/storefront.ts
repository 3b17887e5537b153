/**
 * The sample shop's storefront pod asks `api` once a second and logs one JSON line per call
 * (`answeredBy`: "pod", "local container", or an error): what in-cluster callers experience.
 */
import { kubectl } from './cluster.js';

/**
 * What the storefront logged about its calls to `api`: over the last `since` seconds, or since
 * `since` when it is an ISO time.
 */
export async function storefrontLines(
  namespace: string,
  since: number | string,
): Promise<Record<string, unknown>[]> {
  const window = typeof since === 'number' ? `--since=${since}s` : `--since-time=${since}`;
  const text = await kubectl(['-n', namespace, 'logs', 'deploy/storefront', window]);
  return text
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/**
 * Waits until one of the storefront's latest calls (last `recentSeconds`) was answered by
 * `where`, and returns the newest such line. A pod that is restarting has no logs for a moment:
 * that only means waiting on.
 */
export async function storefrontHears(
  namespace: string,
  where: string,
  timeoutMs = 60_000,
  recentSeconds = 2,
): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  let last: Record<string, unknown>[] | string = [];
  while (Date.now() < deadline) {
    last = await storefrontLines(namespace, recentSeconds).catch((e: Error) => e.message);
    const heard = typeof last === 'string' ? undefined : last.findLast((l) => l.answeredBy === where);
    if (heard) return heard;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the storefront never heard from "${where}"; last lines:\n${JSON.stringify(last)}`);
}

/**
 * Waits until every call the storefront logged over the last `seconds` was answered by `where`:
 * calls made during a rollout to the old pods (a connect times out after 10 s) are over by then,
 * so later assertions about the storefront's lines see only what came after.
 */
export async function storefrontSteady(
  namespace: string,
  where: string,
  seconds = 12,
  timeoutMs = 90_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lines: Record<string, unknown>[] = [];
  while (Date.now() < deadline) {
    lines = await storefrontLines(namespace, seconds);
    if (lines.length >= seconds / 2 && lines.every((l) => l.answeredBy === where)) return;
    await new Promise((r) => setTimeout(r, 1_000));
  }
  throw new Error(`the storefront's calls never all reached the ${where}: ${JSON.stringify(lines)}`);
}
