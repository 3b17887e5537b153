/**
 * Keeps a container's volume files current, as the kubelet does in a pod: ConfigMaps and
 * Secrets the volumes read are watched (or polled when watching is forbidden), tokens are
 * renewed before they expire, and downward API labels/annotations follow the running pod.
 * Each change recomputes the layout with the same rules as resolveVolumes and reports
 * the files that differ.
 *
 * As in the pod: subPath mounts keep their first content; a volume that can no longer be
 * mounted (its ConfigMap deleted) keeps its last files; an optional object that goes away
 * empties its files.
 */
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import { errorText } from '../../util/errors.js';
import { debugLogger } from '../../util/log.js';
import { Backoff, sleep } from '../api/backoff.js';
import { KubeApiError } from '../api/errors.js';
import type { KubeClient, MintedToken } from '../client.js';
import { clusterVolumeLookup } from './live.js';
import {
  assembleLayout,
  type MountLayout,
  type ResolveVolumesInput,
  resolveMounts,
  type VolumeFile,
  type VolumeLayout,
  type VolumeLookup,
} from './resolve.js';

const log = debugLogger('kube:volumes');

/** The client calls the follower makes. */
export type VolumeFollowClient = Pick<KubeClient, 'get' | 'watch' | 'requestToken'>;

export interface VolumeChange {
  /** Files that are new or whose content, mode or owner changed. */
  files: VolumeFile[];
  /** Paths of files that are gone. */
  removed: string[];
  /** The whole layout now. */
  layout: VolumeLayout;
}

export interface FollowVolumesOptions {
  /**
   * The layout the container got (its tokens are reused until due). Without it, the
   * first report carries every file.
   */
  initial?: VolumeLayout;
  /** The running pod whose labels and annotations downward API files read; watched when given. */
  podName?: string;
  /** Changes arriving within this window are reported together. Default 100 ms. */
  debounceMs?: number;
  /** Share of a token's lifetime after which it is renewed (the kubelet's 0.8). */
  tokenRefreshFraction?: number;
  /** Interval of reads when a watch is forbidden. Default 2 s. */
  pollIntervalMs?: number;
  /** Things that make the files differ from the pod's (unreadable objects, volumes that stopped mounting). */
  onWarning?: (text: string) => void;
}

const DAY_MS = 24 * 3600 * 1000;
const TOKEN_RETRY_MS = 10_000;
/** Between attempts to follow an object again after its watch gave up. */
const REFOLLOW_BACKOFF = { initialMs: 1000, maxMs: 10_000 };

interface CachedToken {
  minted: MintedToken;
  /** When it must be renewed (ms since epoch). */
  renewAt: number;
}

function tokenKey(serviceAccount: string, audiences: readonly string[], expirationSeconds: number): string {
  return JSON.stringify([serviceAccount, audiences, expirationSeconds]);
}

/** When the kubelet would renew a token issued at `issuedAt`: after `fraction` of its life, or after a day. */
function renewTime(issuedAt: number, expiresAt: string, expirationSeconds: number, fraction: number): number {
  const parsed = Date.parse(expiresAt);
  const end = Number.isFinite(parsed) ? parsed : issuedAt + expirationSeconds * 1000;
  return issuedAt + Math.min(Math.max(0, end - issuedAt) * fraction, DAY_MS);
}

/** True when `next` is what the cache already holds (`undefined`: nothing cached yet). */
function sameVersion<T extends { metadata?: { resourceVersion?: string } }>(
  before: T | null | undefined,
  next: T | null,
): boolean {
  if (before === undefined) return false;
  if (before === null || next === null) return before === next;
  return before.metadata?.resourceVersion === next.metadata?.resourceVersion;
}

/**
 * A subPath mount once its volume changed. The kubelet never updates subPath mounts: the
 * container keeps the file or directory it bind-mounted from the volume's old `..data`
 * generation. A single file keeps its content; a directory loses its files, because the
 * kubelet deletes the old generation once the new one is in place.
 */
function subPathAfterUpdate(before: MountLayout, now: MountLayout): MountLayout {
  if (before.volumeDigest === undefined || before.volumeDigest === now.volumeDigest) {
    return { ...before, volumeDigest: now.volumeDigest };
  }
  const root = before.directories.find((d) => d.path === d.mountPath);
  if (!root) return { ...before, volumeDigest: now.volumeDigest };
  return { ...before, files: [], tokens: [], directories: [root], volumeDigest: now.volumeDigest };
}

function sameFile(a: VolumeFile, b: VolumeFile): boolean {
  return a.mode === b.mode && a.uid === b.uid && a.gid === b.gid && a.content.equals(b.content);
}

function isForbidden(err: unknown): boolean {
  return err instanceof KubeApiError && (err.status === 403 || err.status === 401);
}

/**
 * Follows the volumes of `input.container` until `signal` aborts, calling `onChange` with
 * the files that changed (at most one call at a time). Resolves on abort; rejects only
 * when `onChange` throws.
 */
export async function followVolumes(
  client: VolumeFollowClient,
  input: ResolveVolumesInput,
  onChange: (change: VolumeChange) => void | Promise<void>,
  signal: AbortSignal,
  options: FollowVolumesOptions = {},
): Promise<void> {
  const fraction = options.tokenRefreshFraction ?? 0.8;
  const debounceMs = options.debounceMs ?? 100;
  const pollMs = options.pollIntervalMs ?? 2000;
  const warn = (text: string) => options.onWarning?.(text);
  const namespace =
    input.namespace ?? input.pod.metadata?.namespace ?? input.livePod?.metadata?.namespace ?? '';
  let current: ResolveVolumesInput = { ...input, namespace };

  const objects = new Map<string, V1ConfigMap | V1Secret | null>();
  const tokens = new Map<string, CachedToken>();
  const timers = new Set<NodeJS.Timeout>();
  const direct = clusterVolumeLookup(client);

  const scheduleTokenRenewal = (at: number) => {
    const timer = setTimeout(
      () => {
        timers.delete(timer);
        trigger();
      },
      Math.max(0, at - Date.now()),
    );
    timers.add(timer);
  };
  const lookup: VolumeLookup = {
    async getConfigMap(ns, name) {
      const key = `ConfigMap/${name}`;
      if (!objects.has(key)) objects.set(key, (await direct.getConfigMap(ns, name)) ?? null);
      return (objects.get(key) as V1ConfigMap | null) ?? undefined;
    },
    async getSecret(ns, name) {
      const key = `Secret/${name}`;
      if (!objects.has(key)) objects.set(key, (await direct.getSecret(ns, name)) ?? null);
      return (objects.get(key) as V1Secret | null) ?? undefined;
    },
    getServiceAccount: (ns, name) => direct.getServiceAccount(ns, name),
    async requestToken(ns, account, opts) {
      const key = tokenKey(account, opts.audiences, opts.expirationSeconds);
      const cached = tokens.get(key);
      if (cached && Date.now() < cached.renewAt) return cached.minted;
      const issuedAt = Date.now();
      let minted: MintedToken;
      try {
        minted = await direct.requestToken(ns, account, opts);
      } catch (err) {
        // The old token stays in the files (the volume keeps its last content); try again soon.
        scheduleTokenRenewal(Date.now() + TOKEN_RETRY_MS);
        throw err;
      }
      const renewAt = renewTime(issuedAt, minted.expiresAt, opts.expirationSeconds, fraction);
      tokens.set(key, { minted, renewAt });
      scheduleTokenRenewal(renewAt);
      return minted;
    },
  };

  // Tokens already handed to the container are reused until they are due.
  const previousFiles = new Map<string, VolumeFile>();
  for (const f of options.initial?.files ?? []) previousFiles.set(f.path, f);
  for (const t of options.initial?.tokens ?? []) {
    const file = previousFiles.get(t.path);
    if (!file) continue;
    // Issued when it would expire minus its requested life (the server may have granted more).
    const expires = Date.parse(t.expiresAt);
    const issuedAt = Number.isFinite(expires) ? expires - t.expirationSeconds * 1000 : Date.now();
    const renewAt = renewTime(issuedAt, t.expiresAt, t.expirationSeconds, fraction);
    tokens.set(tokenKey(t.serviceAccount, t.audiences, t.expirationSeconds), {
      minted: { token: file.content.toString('utf8'), expiresAt: t.expiresAt },
      renewAt,
    });
    scheduleTokenRenewal(renewAt);
  }

  let previousMounts = new Map<string, MountLayout>();
  let firstRun = options.initial === undefined;
  const recompute = async (): Promise<string[] | undefined> => {
    let resolved: Awaited<ReturnType<typeof resolveMounts>>;
    try {
      resolved = await resolveMounts(current, lookup);
    } catch (err) {
      warn(`volumes could not be refreshed: ${errorText(err)}`);
      return undefined;
    }
    const mounts = resolved.mounts.map((m) => {
      const before = previousMounts.get(m.mount.mountPath);
      if (m.error) {
        warn(`${m.error.message}; the files of ${m.mount.mountPath} stay as they were`);
        return before ?? { ...m, files: [], directories: [], tokens: [] };
      }
      if (before && (m.mount.subPath || m.mount.subPathExpr)) return subPathAfterUpdate(before, m);
      return m;
    });
    if (previousMounts.size === 0 && options.initial) {
      // Seed subPath mounts with what the container got, so they never change.
      for (const m of mounts) {
        if (!(m.mount.subPath || m.mount.subPathExpr)) continue;
        m.files = m.files.map((f) => previousFiles.get(f.path) ?? f);
      }
    }
    previousMounts = new Map(mounts.map((m) => [m.mount.mountPath, m]));
    const layout = assembleLayout(mounts, resolved.warnings);
    const files = layout.files.filter((f) => {
      const before = previousFiles.get(f.path);
      return firstRun || !before || !sameFile(before, f);
    });
    const now = new Set(layout.files.map((f) => f.path));
    const removed = [...previousFiles.keys()].filter((p) => !now.has(p));
    previousFiles.clear();
    for (const f of layout.files) previousFiles.set(f.path, f);
    const report = firstRun || files.length > 0 || removed.length > 0;
    firstRun = false;
    if (report) await onChange({ files, removed, layout });
    return resolved.references.configMaps
      .map((n) => `ConfigMap/${n}`)
      .concat(resolved.references.secrets.map((n) => `Secret/${n}`));
  };

  // Recomputations run one at a time; changes meanwhile cause one more run.
  let dirty = false;
  let running: Promise<void> | undefined;
  let failure: unknown;
  const stopped = new AbortController();
  const stop = () => stopped.abort();
  if (signal.aborted) stop();
  else signal.addEventListener('abort', stop, { once: true });
  const trigger = () => {
    dirty = true;
    if (running || stopped.signal.aborted) return;
    running = (async () => {
      try {
        while (dirty && !stopped.signal.aborted) {
          dirty = false;
          await sleep(debounceMs, stopped.signal);
          if (stopped.signal.aborted) break;
          await recompute();
        }
      } catch (err) {
        failure = err;
        stopped.abort();
      } finally {
        running = undefined;
      }
    })();
  };

  const initialRefs = await recompute().catch((err) => {
    failure = err;
    return undefined;
  });
  if (failure) {
    signal.removeEventListener('abort', stop);
    for (const t of timers) clearTimeout(t);
    throw failure;
  }
  const refs = initialRefs ?? [];

  const followObject = async (key: string) => {
    const [kind, name] = key.split('/') as ['ConfigMap' | 'Secret', string];
    const backoff = new Backoff(REFOLLOW_BACKOFF);
    while (!stopped.signal.aborted) {
      let synced = false;
      let seen = false;
      try {
        await client.watch(
          kind,
          namespace,
          {
            fieldSelector: `metadata.name=${name}`,
            onSynced: () => {
              if (!synced && !seen && objects.get(key) !== null) {
                objects.set(key, null);
                trigger();
              }
              synced = true;
            },
          },
          (event) => {
            seen = true;
            const next = event.type === 'DELETED' ? null : event.object;
            if (sameVersion(objects.get(key), next)) return;
            objects.set(key, next);
            trigger();
          },
          stopped.signal,
        );
        backoff.reset();
      } catch (err) {
        if (stopped.signal.aborted) return;
        if (isForbidden(err)) {
          log.debug('watch forbidden, polling', { key });
          return pollObject(kind, name, key);
        }
        warn(`watching ${kind} ${namespace}/${name} failed (${errorText(err)}); retrying`);
        await sleep(backoff.next(), stopped.signal);
      }
    }
  };
  const pollObject = async (kind: 'ConfigMap' | 'Secret', name: string, key: string) => {
    while (!stopped.signal.aborted) {
      try {
        const obj = (await client.get(kind, namespace, name)) ?? null;
        if (!sameVersion(objects.get(key), obj)) {
          objects.set(key, obj);
          trigger();
        }
      } catch (err) {
        warn(`reading ${kind} ${namespace}/${name} failed: ${errorText(err)}`);
      }
      await sleep(pollMs, stopped.signal);
    }
  };
  const followPod = async (podName: string) => {
    while (!stopped.signal.aborted) {
      try {
        await client.watch(
          'Pod',
          namespace,
          { fieldSelector: `metadata.name=${podName}` },
          (event) => {
            if (event.type === 'DELETED') return;
            const pod = event.object as V1Pod;
            const before = current.livePod?.metadata;
            const after = pod.metadata;
            if (
              JSON.stringify([before?.labels, before?.annotations]) ===
              JSON.stringify([after?.labels, after?.annotations])
            )
              return;
            current = { ...current, livePod: pod, ...(current.pod.metadata?.uid ? { pod } : {}) };
            trigger();
          },
          stopped.signal,
        );
      } catch (err) {
        if (stopped.signal.aborted) return;
        warn(`watching pod ${namespace}/${podName} failed (${errorText(err)}); its labels are not followed`);
        return;
      }
    }
  };

  const tasks = refs.map((key) => followObject(key));
  if (options.podName) tasks.push(followPod(options.podName));
  // Token renewals need no watch: stay until stopped.
  tasks.push(
    new Promise<void>((resolve) => {
      if (stopped.signal.aborted) resolve();
      else stopped.signal.addEventListener('abort', () => resolve(), { once: true });
    }),
  );
  await Promise.all(tasks);
  await running;
  signal.removeEventListener('abort', stop);
  for (const t of timers) clearTimeout(t);
  if (failure) throw failure;
}
