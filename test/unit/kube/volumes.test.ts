import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type {
  V1ConfigMap,
  V1Container,
  V1Pod,
  V1PodSpec,
  V1Secret,
  V1ServiceAccount,
  V1Volume,
  V1VolumeMount,
} from '@kubernetes/client-node';
import { KubeApiError } from '../../../src/kube/api/errors.js';
import {
  type ResolveVolumesInput,
  resolveVolumes,
  SERVICE_ACCOUNT_MOUNT_PATH,
  type VolumeFile,
  type VolumeLayout,
  type VolumeLookup,
} from '../../../src/kube/volumes/resolve.js';
import { isDevboxError } from '../../../src/util/errors.js';

const NS = 'shop';

interface FakeObjects {
  configMaps?: Record<string, { data?: Record<string, string>; binaryData?: Record<string, string> }>;
  /** Values in clear; stored base64 as the API returns them. */
  secrets?: Record<string, Record<string, string>>;
  serviceAccounts?: Record<string, V1ServiceAccount | 'forbidden'>;
}

/** A VolumeLookup over in-memory objects; tokens name their request. */
function fakeLookup(objects: FakeObjects = {}) {
  const tokenRequests: { serviceAccount: string; audiences: string[]; expirationSeconds: number }[] = [];
  const lookup: VolumeLookup = {
    async getConfigMap(_ns, name): Promise<V1ConfigMap | undefined> {
      const cm = objects.configMaps?.[name];
      return cm ? { metadata: { name, namespace: NS }, ...cm } : undefined;
    },
    async getSecret(_ns, name): Promise<V1Secret | undefined> {
      const s = objects.secrets?.[name];
      if (!s) return undefined;
      const data = Object.fromEntries(
        Object.entries(s).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
      );
      return { metadata: { name, namespace: NS }, data };
    },
    async getServiceAccount(_ns, name) {
      const sa = objects.serviceAccounts?.[name];
      if (sa === 'forbidden') throw new Error('serviceaccounts "x" is forbidden');
      return sa;
    },
    async requestToken(ns, serviceAccount, options) {
      tokenRequests.push({ serviceAccount, ...options });
      return {
        token: `token:${ns}:${serviceAccount}:${options.audiences.join(',')}:${options.expirationSeconds}`,
        expiresAt: new Date(Date.now() + options.expirationSeconds * 1000).toISOString(),
      };
    },
  };
  return { lookup, tokenRequests };
}

/** A running pod (admitted: it has a uid, so no token volume is added). */
function pod(container: Partial<V1Container>, spec: Partial<V1PodSpec> = {}): V1Pod {
  return {
    metadata: {
      name: 'api-7d9f-abcde',
      namespace: NS,
      uid: '1f2e3d4c-0000-4000-8000-000000000001',
      labels: { app: 'api', 'pod-template-hash': '7d9f' },
      annotations: { 'example.com/owner': 'team-a', note: 'say "hi"\nbye' },
    },
    spec: {
      containers: [
        {
          name: 'app',
          image: 'app:1',
          resources: { limits: { cpu: '500m', memory: '256Mi' }, requests: { cpu: '250m', memory: '128Mi' } },
          ...container,
        },
      ],
      nodeName: 'node-1',
      serviceAccountName: 'api-sa',
      ...spec,
    },
    status: {
      podIP: '10.244.1.7',
      hostIP: '172.18.0.2',
      startTime: '2026-05-01T10:00:00Z' as unknown as Date,
    },
  };
}

/** The pod with one volume mounted. */
function mounted(volume: V1Volume, mount: Partial<V1VolumeMount> = {}, spec: Partial<V1PodSpec> = {}): V1Pod {
  return pod(
    { volumeMounts: [{ name: volume.name, mountPath: '/etc/app', ...mount }] },
    { volumes: [volume], ...spec },
  );
}

async function layoutOf(
  p: V1Pod,
  objects: FakeObjects = {},
  input: Partial<ResolveVolumesInput> = {},
): Promise<VolumeLayout> {
  return resolveVolumes({ pod: p, container: 'app', ...input }, fakeLookup(objects).lookup);
}

/** path → [content, octal mode] */
function summary(files: VolumeFile[]): Record<string, [string, string]> {
  return Object.fromEntries(files.map((f) => [f.path, [f.content.toString('utf8'), f.mode.toString(8)]]));
}

function dirs(layout: VolumeLayout): Record<string, string> {
  return Object.fromEntries(layout.directories.map((d) => [d.path, d.mode.toString(8)]));
}

const appConfig = {
  configMaps: { 'app-config': { data: { 'app.yaml': 'port: 8080', 'log.level': 'debug' } } },
};

describe('configMap volumes', () => {
  it('writes every key of data and binaryData with the default mode 0644', async () => {
    const layout = await layoutOf(mounted({ name: 'cfg', configMap: { name: 'bin' } }), {
      configMaps: {
        bin: {
          data: { 'a.txt': 'alpha' },
          binaryData: { blob: Buffer.from([0, 1, 255]).toString('base64') },
        },
      },
    });
    assert.deepEqual(summary(layout.files), {
      '/etc/app/a.txt': ['alpha', '644'],
      '/etc/app/blob': ['\u0000\u0001\ufffd', '644'],
    });
    assert.deepEqual(layout.files.find((f) => f.path === '/etc/app/blob')?.content, Buffer.from([0, 1, 255]));
    // A ConfigMap volume lives on the node's disk (an emptyDir, 0777).
    assert.deepEqual(dirs(layout), { '/etc/app': '777' });
    for (const f of layout.files) {
      assert.equal(f.uid, 0);
      assert.equal(f.gid, 0);
      assert.equal(f.readOnly, true);
      assert.equal(f.live, true);
      assert.equal(f.secret, false);
      assert.equal(f.volume, 'cfg');
      assert.equal(f.mountPath, '/etc/app');
    }
  });

  it('writes only items, at their paths, with their own mode or defaultMode', async () => {
    const layout = await layoutOf(
      mounted({
        name: 'cfg',
        configMap: {
          name: 'app-config',
          defaultMode: 0o600,
          items: [
            { key: 'app.yaml', path: 'conf/nested/app.yaml', mode: 0o400 },
            { key: 'log.level', path: 'level' },
          ],
        },
      }),
      appConfig,
    );
    assert.deepEqual(summary(layout.files), {
      '/etc/app/conf/nested/app.yaml': ['port: 8080', '400'],
      '/etc/app/level': ['debug', '600'],
    });
    assert.deepEqual(dirs(layout), {
      '/etc/app': '777',
      '/etc/app/conf': '755',
      '/etc/app/conf/nested': '755',
    });
  });

  it('fails like the kubelet for a missing ConfigMap or key, naming the volume and the object', async () => {
    await assert.rejects(
      layoutOf(mounted({ name: 'cfg', configMap: { name: 'nope' } })),
      (err) =>
        isDevboxError(err, 'NOT_FOUND') &&
        err.message === 'MountVolume.SetUp failed for volume "cfg" : configmap "nope" not found' &&
        /ContainerCreating/.test(err.hint ?? ''),
    );
    await assert.rejects(
      layoutOf(
        mounted({ name: 'cfg', configMap: { name: 'app-config', items: [{ key: 'missing', path: 'm' }] } }),
        appConfig,
      ),
      (err) =>
        isDevboxError(err, 'NOT_FOUND') &&
        /volume "cfg" : configmap references non-existent config key: missing$/.test(err.message),
    );
  });

  it('reports every failing volume at once', async () => {
    const p = pod(
      {
        volumeMounts: [
          { name: 'a', mountPath: '/a' },
          { name: 'b', mountPath: '/b' },
        ],
      },
      {
        volumes: [
          { name: 'a', configMap: { name: 'cm-a' } },
          { name: 'b', secret: { secretName: 's-b' } },
        ],
      },
    );
    await assert.rejects(layoutOf(p), (err) => {
      assert.ok(isDevboxError(err, 'NOT_FOUND'));
      assert.match(err.message, /volume "a" : configmap "cm-a" not found/);
      assert.match(err.message, /volume "b" : secret "s-b" not found/);
      return true;
    });
  });

  it('mounts an optional missing ConfigMap as an empty directory and skips optional missing keys', async () => {
    const empty = await layoutOf(mounted({ name: 'cfg', configMap: { name: 'nope', optional: true } }));
    assert.deepEqual(empty.files, []);
    assert.deepEqual(dirs(empty), { '/etc/app': '777' });
    const partial = await layoutOf(
      mounted({
        name: 'cfg',
        configMap: {
          name: 'app-config',
          optional: true,
          items: [
            { key: 'missing', path: 'm' },
            { key: 'log.level', path: 'level' },
          ],
        },
      }),
      appConfig,
    );
    assert.deepEqual(Object.keys(summary(partial.files)), ['/etc/app/level']);
  });
});

describe('secret volumes', () => {
  it('decodes values, applies items and modes, and marks the files secret', async () => {
    const layout = await layoutOf(
      mounted({
        name: 'creds',
        secret: {
          secretName: 'db',
          defaultMode: 0o440,
          items: [
            { key: 'password', path: 'db/pass', mode: 0o400 },
            { key: 'user', path: 'user' },
          ],
        },
      }),
      { secrets: { db: { user: 'alice', password: 's3cr=t', unused: 'x' } } },
    );
    assert.deepEqual(summary(layout.files), {
      '/etc/app/db/pass': ['s3cr=t', '400'],
      '/etc/app/user': ['alice', '440'],
    });
    assert.ok(layout.files.every((f) => f.secret));
    // Secret volumes are tmpfs (1777).
    assert.deepEqual(dirs(layout), { '/etc/app': '1777', '/etc/app/db': '755' });
  });

  it('fails for a missing Secret or key unless optional', async () => {
    await assert.rejects(
      layoutOf(mounted({ name: 'creds', secret: { secretName: 'db' } })),
      (err) => isDevboxError(err, 'NOT_FOUND') && /volume "creds" : secret "db" not found$/.test(err.message),
    );
    await assert.rejects(
      layoutOf(mounted({ name: 'creds', secret: { secretName: 'db', items: [{ key: 'x', path: 'x' }] } }), {
        secrets: { db: { user: 'a' } },
      }),
      (err) => /references non-existent secret key: x$/.test((err as Error).message),
    );
    const optional = await layoutOf(mounted({ name: 'creds', secret: { secretName: 'db', optional: true } }));
    assert.deepEqual(optional.files, []);
  });
});

describe('fsGroup', () => {
  it('gives files group read, directories setgid and group read+execute, and the group ownership', async () => {
    const layout = await layoutOf(
      mounted(
        {
          name: 'creds',
          secret: { secretName: 'db', items: [{ key: 'user', path: 'nested/u', mode: 0o600 }] },
        },
        {},
        { securityContext: { fsGroup: 2000 } },
      ),
      { secrets: { db: { user: 'alice' } } },
    );
    assert.deepEqual(summary(layout.files), { '/etc/app/nested/u': ['alice', '640'] });
    assert.equal(layout.files[0]?.gid, 2000);
    assert.deepEqual(dirs(layout), { '/etc/app': '3777', '/etc/app/nested': '2755' });
  });
});

describe('downwardAPI volumes', () => {
  const volume: V1Volume = {
    name: 'info',
    downwardAPI: {
      items: [
        { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
        { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
        { path: 'owner', fieldRef: { fieldPath: "metadata.annotations['example.com/owner']" } },
        { path: 'name', fieldRef: { fieldPath: 'metadata.name' } },
        { path: 'ns', fieldRef: { fieldPath: 'metadata.namespace' } },
        { path: 'uid', fieldRef: { fieldPath: 'metadata.uid' }, mode: 0o400 },
        {
          path: 'cpu_limit',
          resourceFieldRef: { containerName: 'app', resource: 'limits.cpu', divisor: '1m' },
        },
        {
          path: 'mem_request',
          resourceFieldRef: { containerName: 'app', resource: 'requests.memory', divisor: '1Mi' },
        },
        { path: 'mem_limit', resourceFieldRef: { containerName: 'app', resource: 'limits.memory' } },
      ],
    },
  };

  it('formats labels and annotations as sorted key="value" lines, quoted like Go', async () => {
    const layout = await layoutOf(mounted(volume));
    const files = summary(layout.files);
    assert.deepEqual(files['/etc/app/labels'], ['app="api"\npod-template-hash="7d9f"', '644']);
    // The kubelet's own copy of the pod carries two more annotations.
    assert.deepEqual(files['/etc/app/annotations'], [
      [
        'example.com/owner="team-a"',
        'kubernetes.io/config.seen="2026-05-01T10:00:00Z"',
        'kubernetes.io/config.source="api"',
        'note="say \\"hi\\"\\nbye"',
      ].join('\n'),
      '644',
    ]);
    assert.ok(layout.warnings.some((w) => /config\.seen annotation is approximated/.test(w)));
    assert.deepEqual(files['/etc/app/owner'], ['team-a', '644']);
    assert.deepEqual(files['/etc/app/name'], ['api-7d9f-abcde', '644']);
    assert.deepEqual(files['/etc/app/ns'], [NS, '644']);
    assert.deepEqual(files['/etc/app/uid'], ['1f2e3d4c-0000-4000-8000-000000000001', '400']);
  });

  it('writes resources with their divisor, rounding up', async () => {
    const files = summary((await layoutOf(mounted(volume))).files);
    assert.equal(files['/etc/app/cpu_limit']?.[0], '500');
    assert.equal(files['/etc/app/mem_request']?.[0], '128');
    assert.equal(files['/etc/app/mem_limit']?.[0], String(256 * 1024 * 1024));
  });

  it("uses the node's allocatable for a limit the container does not set, and leaves the file out when unknown", async () => {
    const noLimits = (p: V1Pod) => {
      const c = p.spec?.containers[0] as V1Container;
      c.resources = { requests: { cpu: '100m' } };
      return p;
    };
    const known = await layoutOf(
      noLimits(mounted(volume)),
      {},
      { nodeAllocatable: { cpu: '4', memory: '8Gi' } },
    );
    assert.equal(summary(known.files)['/etc/app/cpu_limit']?.[0], '4000');
    const unknown = await layoutOf(noLimits(mounted(volume)));
    assert.equal(summary(unknown.files)['/etc/app/cpu_limit'], undefined);
    assert.ok(unknown.warnings.some((w) => /cpu_limit.*no cpu limit.*allocatable/.test(w)));
  });

  it('reads metadata from the running pod when resolving a template', async () => {
    const template = mounted(volume, {}, { automountServiceAccountToken: false });
    delete template.metadata?.uid;
    delete template.status;
    const live = pod({});
    live.metadata = { ...live.metadata, name: 'api-live-1', labels: { app: 'api', extra: 'yes' } };
    const files = summary((await layoutOf(template, {}, { livePod: live, namespace: NS })).files);
    assert.equal(files['/etc/app/name']?.[0], 'api-live-1');
    assert.equal(files['/etc/app/labels']?.[0], 'app="api"\nextra="yes"');
  });

  it('leaves out what a template cannot answer, with a warning', async () => {
    const template = mounted(volume, {}, { automountServiceAccountToken: false });
    delete template.metadata?.uid;
    delete template.metadata?.name;
    delete template.status;
    const layout = await layoutOf(template);
    assert.equal(summary(layout.files)['/etc/app/name'], undefined);
    assert.equal(summary(layout.files)['/etc/app/ns']?.[0], NS);
    assert.ok(layout.warnings.some((w) => /metadata\.name, which needs a running pod/.test(w)));
  });
});

describe('projected volumes', () => {
  it('mixes sources under one defaultMode, with per-item modes and tokens', async () => {
    const { lookup, tokenRequests } = fakeLookup({
      ...appConfig,
      secrets: { db: { user: 'alice', password: 'pw' } },
    });
    const p = mounted({
      name: 'all',
      projected: {
        defaultMode: 0o440,
        sources: [
          { configMap: { name: 'app-config', items: [{ key: 'app.yaml', path: 'config/app.yaml' }] } },
          { secret: { name: 'db', items: [{ key: 'password', path: 'db/password', mode: 0o400 }] } },
          { secret: { name: 'absent', optional: true } },
          { downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
          { serviceAccountToken: { path: 'vault/token', audience: 'vault', expirationSeconds: 600 } },
        ],
      },
    });
    const layout = await resolveVolumes({ pod: p, container: 'app' }, lookup);
    assert.deepEqual(summary(layout.files), {
      '/etc/app/config/app.yaml': ['port: 8080', '440'],
      '/etc/app/db/password': ['pw', '400'],
      '/etc/app/labels': ['app="api"\npod-template-hash="7d9f"', '440'],
      '/etc/app/vault/token': [`token:${NS}:api-sa:vault:600`, '440'],
    });
    assert.deepEqual(tokenRequests, [
      { serviceAccount: 'api-sa', audiences: ['vault'], expirationSeconds: 600 },
    ]);
    assert.deepEqual(
      layout.tokens.map((t) => [t.path, t.serviceAccount, t.audiences, t.expirationSeconds]),
      [['/etc/app/vault/token', 'api-sa', ['vault'], 600]],
    );
    assert.deepEqual(dirs(layout), {
      '/etc/app': '1777',
      '/etc/app/config': '755',
      '/etc/app/db': '755',
      '/etc/app/vault': '755',
    });
  });

  it('writes tokens 0600 (0640 after the ownership pass) when fsGroup is set', async () => {
    const p = mounted(
      { name: 'tok', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } },
      {},
      { securityContext: { fsGroup: 3000 } },
    );
    const layout = await layoutOf(p);
    assert.deepEqual(summary(layout.files)['/etc/app/token'], [`token:${NS}:api-sa::3600`, '640']);
  });

  it('writes tokens 0600 owned by the pod user when every container runs as the same uid', async () => {
    const p = mounted(
      {
        name: 'tok',
        projected: {
          sources: [{ serviceAccountToken: { path: 'token' } }, { configMap: { name: 'app-config' } }],
        },
      },
      {},
      { securityContext: { runAsUser: 1000 } },
    );
    const layout = await layoutOf(p, appConfig);
    const token = layout.files.find((f) => f.path === '/etc/app/token');
    assert.equal(token?.mode, 0o600);
    assert.equal(token?.uid, 1000);
    // Only tokens take the user; other files stay root's.
    assert.equal(layout.files.find((f) => f.path === '/etc/app/log.level')?.uid, 0);
    // Containers naming different users: no common user, the default mode.
    const mixed = mounted(
      { name: 'tok', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } },
      {},
      {
        securityContext: { runAsUser: 1000 },
        initContainers: [{ name: 'init', image: 'i', securityContext: { runAsUser: 2000 } }],
      },
    );
    const other = (await layoutOf(mixed)).files[0];
    assert.equal(other?.mode, 0o644);
    assert.equal(other?.uid, 0);
  });

  it('leaves a token out, with a warning, when devbox may not mint it', async () => {
    const { lookup } = fakeLookup(appConfig);
    lookup.requestToken = async () => {
      throw new KubeApiError(403, 'Forbidden', 'serviceaccounts "api-sa" is forbidden');
    };
    const p = mounted({
      name: 'tok',
      projected: {
        sources: [{ serviceAccountToken: { path: 'token' } }, { configMap: { name: 'app-config' } }],
      },
    });
    const layout = await resolveVolumes({ pod: p, container: 'app' }, lookup);
    assert.deepEqual(Object.keys(summary(layout.files)), ['/etc/app/app.yaml', '/etc/app/log.level']);
    assert.ok(
      layout.warnings.some((w) =>
        /^volume tok: no token for ServiceAccount shop\/api-sa \(create serviceaccounts\/token is not allowed\); token is left out$/.test(
          w,
        ),
      ),
    );
  });

  it('reports all failing sources of a volume together', async () => {
    const p = mounted({
      name: 'all',
      projected: { sources: [{ configMap: { name: 'cm-x' } }, { secret: { name: 's-y' } }] },
    });
    await assert.rejects(layoutOf(p), (err) => {
      assert.ok(isDevboxError(err, 'NOT_FOUND'));
      assert.equal(
        err.message,
        'MountVolume.SetUp failed for volume "all" : configmap "cm-x" not found; secret "s-y" not found',
      );
      return true;
    });
  });

  it('warns about sources devbox cannot produce', async () => {
    const p = mounted({
      name: 'bundle',
      projected: { sources: [{ clusterTrustBundle: { path: 'ca.pem', signerName: 'x/y' } }] },
    });
    const layout = await layoutOf(p);
    assert.deepEqual(layout.files, []);
    assert.ok(layout.warnings.some((w) => /projected source clusterTrustBundle is not supported/.test(w)));
  });
});

describe('subPath', () => {
  const vol: V1Volume = {
    name: 'cfg',
    configMap: {
      name: 'app-config',
      items: [
        { key: 'app.yaml', path: 'conf/app.yaml' },
        { key: 'log.level', path: 'level', mode: 0o600 },
      ],
    },
  };
  const withMounts = (mounts: V1VolumeMount[]) =>
    pod({ volumeMounts: mounts }, { volumes: [vol], automountServiceAccountToken: false });

  it('mounts a single key as a file, not followed for updates', async () => {
    const layout = await layoutOf(
      withMounts([{ name: 'cfg', mountPath: '/etc/level.txt', subPath: 'level' }]),
      appConfig,
    );
    assert.deepEqual(summary(layout.files), { '/etc/level.txt': ['debug', '600'] });
    assert.equal(layout.files[0]?.live, false);
    assert.deepEqual(layout.directories, []);
  });

  it('mounts a subdirectory of the volume at the mount path', async () => {
    const layout = await layoutOf(
      withMounts([{ name: 'cfg', mountPath: '/srv/conf', subPath: 'conf' }]),
      appConfig,
    );
    assert.deepEqual(summary(layout.files), { '/srv/conf/app.yaml': ['port: 8080', '644'] });
    assert.deepEqual(dirs(layout), { '/srv/conf': '755' });
  });

  it('creates a missing subPath as an empty directory, which whole-volume mounts see too', async () => {
    const layout = await layoutOf(
      withMounts([
        { name: 'cfg', mountPath: '/etc/app' },
        { name: 'cfg', mountPath: '/var/missing', subPath: 'nothere' },
      ]),
      appConfig,
    );
    assert.deepEqual(dirs(layout), {
      '/etc/app': '777',
      '/var/missing': '777',
      '/etc/app/conf': '755',
      '/etc/app/nothere': '777',
    });
    assert.ok(!layout.files.some((f) => f.path.startsWith('/var/missing')));
  });

  it('expands subPathExpr with the container env, and skips it without', async () => {
    const mounts = [{ name: 'cfg', mountPath: '/etc/x', subPathExpr: '$(WHICH)' }];
    const withEnv = await layoutOf(withMounts(mounts), appConfig, { env: { WHICH: 'level' } });
    assert.deepEqual(summary(withEnv.files), { '/etc/x': ['debug', '600'] });
    const without = await layoutOf(withMounts(mounts), appConfig);
    assert.deepEqual(without.files, []);
    assert.ok(without.warnings.some((w) => /subPathExpr/.test(w)));
  });
});

describe('overlapping mounts', () => {
  it('hides what an outer mount has under a deeper mount', async () => {
    const p = pod(
      {
        volumeMounts: [
          { name: 'inner', mountPath: '/etc/app/secret' },
          { name: 'outer', mountPath: '/etc/app' },
        ],
      },
      {
        automountServiceAccountToken: false,
        volumes: [
          { name: 'outer', configMap: { name: 'outer' } },
          { name: 'inner', secret: { secretName: 'inner' } },
        ],
      },
    );
    const layout = await layoutOf(p, {
      configMaps: { outer: { data: { secret: 'shadowed', 'keep.txt': 'kept' } } },
      secrets: { inner: { key: 'value' } },
    });
    assert.deepEqual(summary(layout.files), {
      '/etc/app/keep.txt': ['kept', '644'],
      '/etc/app/secret/key': ['value', '644'],
    });
    assert.deepEqual(
      layout.directories.map((d) => d.path),
      ['/etc/app', '/etc/app/secret'],
    );
  });
});

describe('service-account token', () => {
  const template = (spec: Partial<V1PodSpec> = {}, container: Partial<V1Container> = {}): V1Pod => ({
    metadata: { labels: { app: 'api' } },
    spec: {
      containers: [{ name: 'app', image: 'app:1', ...container }],
      serviceAccountName: 'api-sa',
      ...spec,
    },
  });
  const rootCa = {
    configMaps: { 'kube-root-ca.crt': { data: { 'ca.crt': '-----BEGIN CERTIFICATE-----\n' } } },
  };

  it('is added to a template as admission adds it: token, ca.crt and namespace', async () => {
    const { lookup, tokenRequests } = fakeLookup(rootCa);
    const layout = await resolveVolumes({ pod: template(), container: 'app', namespace: NS }, lookup);
    assert.deepEqual(summary(layout.files), {
      [`${SERVICE_ACCOUNT_MOUNT_PATH}/ca.crt`]: ['-----BEGIN CERTIFICATE-----\n', '644'],
      [`${SERVICE_ACCOUNT_MOUNT_PATH}/namespace`]: [NS, '644'],
      [`${SERVICE_ACCOUNT_MOUNT_PATH}/token`]: [`token:${NS}:api-sa::3607`, '644'],
    });
    assert.deepEqual(tokenRequests, [{ serviceAccount: 'api-sa', audiences: [], expirationSeconds: 3607 }]);
    assert.equal(layout.tokens[0]?.path, `${SERVICE_ACCOUNT_MOUNT_PATH}/token`);
  });

  it("uses the 'default' account when the pod names none", async () => {
    const { lookup, tokenRequests } = fakeLookup(rootCa);
    await resolveVolumes(
      { pod: template({ serviceAccountName: undefined }), container: 'app', namespace: NS },
      lookup,
    );
    assert.equal(tokenRequests[0]?.serviceAccount, 'default');
  });

  it('is left out when the pod or its ServiceAccount says automountServiceAccountToken: false', async () => {
    const podOff = await layoutOf(template({ automountServiceAccountToken: false }), rootCa, {
      namespace: NS,
    });
    assert.deepEqual(podOff.files, []);
    const saOff = await layoutOf(
      template(),
      { ...rootCa, serviceAccounts: { 'api-sa': { automountServiceAccountToken: false } } },
      { namespace: NS },
    );
    assert.deepEqual(saOff.files, []);
    // The pod's own setting wins over the account's.
    const podOn = await layoutOf(
      template({ automountServiceAccountToken: true }),
      { ...rootCa, serviceAccounts: { 'api-sa': { automountServiceAccountToken: false } } },
      { namespace: NS },
    );
    assert.equal(podOn.files.length, 3);
  });

  it('is not added when the container already mounts something at its path', async () => {
    const layout = await layoutOf(
      template(
        { volumes: [{ name: 'own', secret: { secretName: 'own-token' } }] },
        { volumeMounts: [{ name: 'own', mountPath: SERVICE_ACCOUNT_MOUNT_PATH }] },
      ),
      { ...rootCa, secrets: { 'own-token': { token: 'mine' } } },
      { namespace: NS },
    );
    assert.deepEqual(summary(layout.files), { [`${SERVICE_ACCOUNT_MOUNT_PATH}/token`]: ['mine', '644'] });
  });

  it('is assumed mounted, with a warning, when the ServiceAccount cannot be read', async () => {
    const layout = await layoutOf(
      template(),
      { ...rootCa, serviceAccounts: { 'api-sa': 'forbidden' } },
      { namespace: NS },
    );
    assert.equal(layout.files.length, 3);
    assert.ok(layout.warnings.some((w) => /ServiceAccount shop\/api-sa could not be read/.test(w)));
  });

  it('comes from the pod itself for a running pod (no second volume)', async () => {
    const p = pod(
      {
        volumeMounts: [
          { name: 'kube-api-access-x7k2p', mountPath: SERVICE_ACCOUNT_MOUNT_PATH, readOnly: true },
        ],
      },
      {
        volumes: [
          {
            name: 'kube-api-access-x7k2p',
            projected: {
              defaultMode: 420,
              sources: [
                { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
                { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
                {
                  downwardAPI: {
                    items: [
                      { path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
                    ],
                  },
                },
              ],
            },
          },
        ],
      },
    );
    const layout = await layoutOf(p, rootCa);
    assert.deepEqual(Object.keys(summary(layout.files)), [
      `${SERVICE_ACCOUNT_MOUNT_PATH}/ca.crt`,
      `${SERVICE_ACCOUNT_MOUNT_PATH}/namespace`,
      `${SERVICE_ACCOUNT_MOUNT_PATH}/token`,
    ]);
    // A running pod without the mount had automount off at admission: nothing is added.
    const off = await layoutOf(pod({}), rootCa);
    assert.deepEqual(off.files, []);
  });
});

describe('copied volumes', () => {
  it('lists emptyDir, PVC and hostPath mounts with the agent path and what is known of their root', async () => {
    const p = pod(
      {
        volumeMounts: [
          { name: 'cache', mountPath: '/var/cache/app' },
          { name: 'data', mountPath: '/data', readOnly: true },
          { name: 'logs', mountPath: '/var/log/host' },
          { name: 'sock', mountPath: '/run/app.sock' },
          { name: 'data', mountPath: '/srv/part', subPath: 'part' },
        ],
      },
      {
        securityContext: { fsGroup: 1500 },
        volumes: [
          { name: 'cache', emptyDir: {} },
          { name: 'data', persistentVolumeClaim: { claimName: 'data' } },
          { name: 'logs', hostPath: { path: '/var/log', type: 'Directory' } },
          { name: 'sock', hostPath: { path: '/run/x.sock', type: 'Socket' } },
        ],
      },
    );
    const layout = await layoutOf(p);
    assert.deepEqual(layout.files, []);
    const byPath = Object.fromEntries(layout.copies.map((c) => [c.mountPath, c]));
    assert.deepEqual(byPath['/var/cache/app'], {
      volume: 'cache',
      type: 'emptyDir',
      mountPath: '/var/cache/app',
      agentPath: '/devbox-pod/var/cache/app',
      readOnly: false,
      kind: 'directory',
      root: { mode: 0o2777, uid: 0, gid: 1500 },
    });
    assert.equal(byPath['/data']?.readOnly, true);
    assert.equal(byPath['/data']?.type, 'persistentVolumeClaim');
    assert.equal(byPath['/var/log/host']?.kind, 'directory');
    assert.equal(byPath['/run/app.sock']?.kind, 'file');
    assert.equal(byPath['/srv/part']?.subPath, 'part');
    assert.equal(byPath['/srv/part']?.kind, undefined);
    assert.equal(byPath['/srv/part']?.agentPath, '/devbox-pod/srv/part');
  });

  it('warns about mounts the agent cannot serve and volume types it does not know', async () => {
    const p = pod(
      {
        volumeMounts: [
          { name: 'cache', mountPath: '/cache', subPathExpr: '$(POD_NAME)' },
          { name: 'odd', mountPath: '/odd' },
          { name: 'ghost', mountPath: '/ghost' },
        ],
      },
      {
        volumes: [{ name: 'cache', emptyDir: {} }, { name: 'odd', futureVolume: {} } as unknown as V1Volume],
      },
    );
    const layout = await layoutOf(p, {}, { env: { POD_NAME: 'x' } });
    assert.deepEqual(layout.copies, []);
    assert.equal(layout.warnings.length, 3);
    assert.match(layout.warnings[0] ?? '', /emptyDir volume cache at \/cache uses subPathExpr/);
    assert.match(layout.warnings[1] ?? '', /type futureVolume, which devbox does not support/);
    assert.match(layout.warnings[2] ?? '', /names volume ghost, which the pod does not have/);
  });
});

describe('containers', () => {
  it('resolves init containers and names the containers when one is missing', async () => {
    const p = pod(
      {},
      {
        initContainers: [{ name: 'migrate', image: 'm', volumeMounts: [{ name: 'cfg', mountPath: '/m' }] }],
        volumes: [
          { name: 'cfg', configMap: { name: 'app-config', items: [{ key: 'log.level', path: 'l' }] } },
        ],
      },
    );
    const layout = await resolveVolumes({ pod: p, container: 'migrate' }, fakeLookup(appConfig).lookup);
    assert.deepEqual(Object.keys(summary(layout.files)), ['/m/l']);
    await assert.rejects(
      resolveVolumes({ pod: p, container: 'nope' }, fakeLookup().lookup),
      (err) => isDevboxError(err, 'NOT_FOUND') && err.hint === 'containers: app, migrate',
    );
  });
});
