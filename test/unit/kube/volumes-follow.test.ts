import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import { KubeApiError } from '../../../src/kube/api/errors.js';
import type { Kind, KindTypes, WatchEvent, WatchOptions } from '../../../src/kube/client.js';
import {
  followVolumes,
  type VolumeChange,
  type VolumeFollowClient,
} from '../../../src/kube/volumes/follow.js';
import { clusterVolumeLookup } from '../../../src/kube/volumes/live.js';
import { resolveVolumes } from '../../../src/kube/volumes/resolve.js';

const NS = 'shop';

type Obj = { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };

/** An in-memory API: objects by kind/name, watches that see every change, minted tokens. */
class FakeClient implements VolumeFollowClient {
  private readonly objects = new Map<string, Obj>();
  private readonly watchers = new Set<{
    kind: string;
    name: string;
    onEvent: (e: WatchEvent<Obj>) => void;
  }>();
  private version = 1;
  forbidWatch = false;
  minted = 0;
  tokenLifeSeconds: number | undefined;
  gets = 0;

  put(kind: Kind, obj: Obj): void {
    const name = obj.metadata?.name ?? '';
    const key = `${kind}/${name}`;
    const existed = this.objects.has(key);
    const stored = {
      ...obj,
      metadata: { ...obj.metadata, namespace: NS, resourceVersion: String(++this.version) },
    };
    this.objects.set(key, stored);
    for (const w of this.watchers) {
      if (w.kind === kind && w.name === name)
        w.onEvent({ type: existed ? 'MODIFIED' : 'ADDED', object: stored });
    }
  }

  remove(kind: Kind, name: string): void {
    const key = `${kind}/${name}`;
    const obj = this.objects.get(key);
    if (!obj) return;
    this.objects.delete(key);
    for (const w of this.watchers)
      if (w.kind === kind && w.name === name) w.onEvent({ type: 'DELETED', object: obj });
  }

  get watching(): number {
    return this.watchers.size;
  }

  async get<K extends Kind>(kind: K, _ns: string, name: string): Promise<KindTypes[K] | undefined> {
    this.gets++;
    return this.objects.get(`${kind}/${name}`) as KindTypes[K] | undefined;
  }

  async watch<K extends Kind>(
    kind: K,
    _ns: string,
    options: WatchOptions,
    onEvent: (event: WatchEvent<KindTypes[K]>) => void,
    signal: AbortSignal,
  ): Promise<void> {
    if (this.forbidWatch) throw new KubeApiError(403, 'Forbidden', `${kind} watch is forbidden`);
    const name = (options.fieldSelector ?? '').replace('metadata.name=', '');
    const existing = this.objects.get(`${kind}/${name}`);
    if (existing) onEvent({ type: 'ADDED', object: existing as KindTypes[K] });
    options.onSynced?.();
    const watcher = { kind, name, onEvent: onEvent as (e: WatchEvent<Obj>) => void };
    this.watchers.add(watcher);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    this.watchers.delete(watcher);
  }

  async requestToken(
    _ns: string,
    serviceAccount: string,
    options: { expirationSeconds?: number; audiences?: string[] } = {},
  ) {
    this.minted++;
    const life = this.tokenLifeSeconds ?? options.expirationSeconds ?? 3600;
    return {
      token: `${serviceAccount}-token-${this.minted}`,
      expiresAt: new Date(Date.now() + life * 1000).toISOString(),
    };
  }
}

function configMap(name: string, data: Record<string, string>): V1ConfigMap {
  return { metadata: { name }, data };
}

function secret(name: string, data: Record<string, string>): V1Secret {
  return {
    metadata: { name },
    data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  };
}

function livePod(): V1Pod {
  return {
    metadata: { name: 'api-1', namespace: NS, uid: 'u-1', labels: { app: 'api' } },
    spec: {
      serviceAccountName: 'api-sa',
      containers: [
        {
          name: 'app',
          image: 'app',
          volumeMounts: [
            { name: 'cfg', mountPath: '/etc/app' },
            { name: 'cfg', mountPath: '/etc/level', subPath: 'level' },
            { name: 'cfg-items', mountPath: '/srv/conf', subPath: 'conf' },
            { name: 'creds', mountPath: '/etc/creds' },
            { name: 'info', mountPath: '/etc/info' },
            { name: 'tok', mountPath: '/var/run/tok' },
          ],
        },
      ],
      volumes: [
        { name: 'cfg', configMap: { name: 'app-config' } },
        {
          name: 'cfg-items',
          configMap: { name: 'app-config', items: [{ key: 'app.yaml', path: 'conf/app.yaml' }] },
        },
        { name: 'creds', secret: { secretName: 'db', optional: true } },
        {
          name: 'info',
          downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] },
        },
        {
          name: 'tok',
          projected: { sources: [{ serviceAccountToken: { path: 'token', expirationSeconds: 600 } }] },
        },
      ],
    },
  };
}

/** Changes as they arrive, with a way to wait for the next one. */
class Changes {
  readonly seen: VolumeChange[] = [];
  private waiters: ((c: VolumeChange) => void)[] = [];
  readonly push = (c: VolumeChange) => {
    this.seen.push(c);
    for (const w of this.waiters.splice(0)) w(c);
  };

  next(timeoutMs = 3000): Promise<VolumeChange> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no change within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }
}

function contentOf(change: VolumeChange, path: string): string | undefined {
  return change.files.find((f) => f.path === path)?.content.toString('utf8');
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('followVolumes', () => {
  const stops: AbortController[] = [];
  afterEach(() => {
    for (const s of stops.splice(0)) s.abort();
  });

  async function start(client: FakeClient, options: Parameters<typeof followVolumes>[4] = {}) {
    const pod = livePod();
    const initial = await resolveVolumes({ pod, container: 'app' }, clusterVolumeLookup(client));
    const changes = new Changes();
    const warnings: string[] = [];
    const stop = new AbortController();
    stops.push(stop);
    const done = followVolumes(client, { pod, container: 'app' }, changes.push, stop.signal, {
      initial,
      debounceMs: 20,
      onWarning: (w) => warnings.push(w),
      ...options,
    });
    return { initial, changes, warnings, stop, done };
  }

  function cluster(): FakeClient {
    const client = new FakeClient();
    client.put('ConfigMap', configMap('app-config', { 'app.yaml': 'v1', level: 'debug' }));
    client.put('Secret', secret('db', { user: 'alice' }));
    return client;
  }

  it('reports a changed ConfigMap key within moments, and nothing while nothing changes', async () => {
    const client = cluster();
    const { changes, stop, done } = await start(client);
    await until(() => client.watching >= 2);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(changes.seen.length, 0, 'the initial layout is not reported again');
    const started = Date.now();
    client.put('ConfigMap', configMap('app-config', { 'app.yaml': 'v2', level: 'info' }));
    const change = await changes.next();
    assert.ok(Date.now() - started < 1000);
    assert.equal(contentOf(change, '/etc/app/app.yaml'), 'v2');
    assert.equal(contentOf(change, '/etc/app/level'), 'info');
    // The subPath mount keeps what the container started with, as in the pod.
    assert.equal(contentOf(change, '/etc/level'), undefined);
    assert.equal(change.layout.files.find((f) => f.path === '/etc/level')?.content.toString(), 'debug');
    // A subPath directory loses its files: the kubelet deletes the volume's old generation it points into.
    assert.deepEqual(change.removed, ['/srv/conf/app.yaml']);
    assert.ok(change.layout.directories.some((d) => d.path === '/srv/conf'));
    stop.abort();
    await done;
  });

  it('removes the files of keys that are gone and of an optional Secret that was deleted', async () => {
    const client = cluster();
    const { changes, stop, done } = await start(client);
    await until(() => client.watching >= 2);
    client.put('ConfigMap', configMap('app-config', { level: 'debug' }));
    assert.deepEqual((await changes.next()).removed, ['/etc/app/app.yaml']);
    client.remove('Secret', 'db');
    const change = await changes.next();
    assert.deepEqual(change.removed, ['/etc/creds/user']);
    client.put('Secret', secret('db', { user: 'bob' }));
    assert.equal(contentOf(await changes.next(), '/etc/creds/user'), 'bob');
    stop.abort();
    await done;
  });

  it('keeps the last files of a volume that can no longer be mounted, with a warning', async () => {
    const client = cluster();
    const { changes, warnings, stop, done } = await start(client);
    await until(() => client.watching >= 2);
    client.remove('ConfigMap', 'app-config');
    await until(() => warnings.some((w) => /configmap "app-config" not found.*stay as they were/.test(w)));
    assert.equal(changes.seen.length, 0);
    client.put('ConfigMap', configMap('app-config', { 'app.yaml': 'v3', level: 'debug' }));
    assert.equal(contentOf(await changes.next(), '/etc/app/app.yaml'), 'v3');
    stop.abort();
    await done;
  });

  it('reuses the token the container got until it is due', async () => {
    const client = cluster();
    const { changes, stop, done } = await start(client);
    const minted = client.minted;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(client.minted, minted);
    assert.equal(changes.seen.length, 0);
    stop.abort();
    await done;
  });

  it('renews tokens after the given share of their life', async () => {
    const client = cluster();
    // The server grants 1 s whatever is asked: renewals are due every 0.3 s.
    client.tokenLifeSeconds = 1;
    const { changes, stop, done } = await start(client, { tokenRefreshFraction: 0.3 });
    // The container's token looks issued 600 s before it expires, so it is renewed at once.
    const first = await changes.next();
    const firstToken = contentOf(first, '/var/run/tok/token');
    const at = Date.now();
    const second = await changes.next();
    const elapsed = Date.now() - at;
    assert.ok(elapsed >= 200 && elapsed < 1500, `renewed after ${elapsed} ms`);
    const secondToken = contentOf(second, '/var/run/tok/token');
    assert.match(secondToken ?? '', /^api-sa-token-\d+$/);
    assert.notEqual(secondToken, firstToken);
    assert.deepEqual(
      second.files.map((f) => f.path),
      ['/var/run/tok/token'],
    );
    stop.abort();
    await done;
  });

  it('follows the labels of the running pod for downward API files', async () => {
    const client = cluster();
    client.put('Pod', livePod());
    const { changes, stop, done } = await start(client, { podName: 'api-1' });
    await until(() => client.watching >= 3);
    const pod = livePod();
    pod.metadata = { ...pod.metadata, labels: { app: 'api', version: 'v2' } };
    client.put('Pod', pod);
    assert.equal(contentOf(await changes.next(), '/etc/info/labels'), 'app="api"\nversion="v2"');
    stop.abort();
    await done;
  });

  it('polls when watching is forbidden', async () => {
    const client = cluster();
    client.forbidWatch = true;
    const { changes, stop, done } = await start(client, { pollIntervalMs: 50 });
    await until(() => client.gets > 4);
    client.put('ConfigMap', configMap('app-config', { 'app.yaml': 'polled', level: 'debug' }));
    assert.equal(contentOf(await changes.next(), '/etc/app/app.yaml'), 'polled');
    stop.abort();
    await done;
  });

  it('reports every file first when no initial layout is given', async () => {
    const client = cluster();
    const changes = new Changes();
    const stop = new AbortController();
    stops.push(stop);
    const done = followVolumes(client, { pod: livePod(), container: 'app' }, changes.push, stop.signal);
    const first = await changes.next();
    assert.deepEqual(
      first.files.map((f) => f.path),
      [
        '/etc/app/app.yaml',
        '/etc/app/level',
        '/etc/creds/user',
        '/etc/info/labels',
        '/etc/level',
        '/srv/conf/app.yaml',
        '/var/run/tok/token',
      ],
    );
    stop.abort();
    await done;
  });

  it('rejects when the change handler fails', async () => {
    const client = cluster();
    const stop = new AbortController();
    stops.push(stop);
    const done = followVolumes(
      client,
      { pod: livePod(), container: 'app' },
      () => {
        throw new Error('docker is gone');
      },
      stop.signal,
    );
    await assert.rejects(done, /docker is gone/);
  });
});
