/**
 * devbox's volume layout against the kubelet's own: pods using each volume type run in the
 * local cluster, and the files `resolvePodVolumes` produces must be exactly the files the
 * container sees at the same paths (content, mode, owner; tokens checked as JWTs of the
 * right account). The follower must see a ConfigMap change within 5 s, and emptyDir
 * contents copied through a real agent must equal the pod's.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { V1Deployment, V1Pod } from '@kubernetes/client-node';
import type { KubeClient } from '../../../src/kube/client.js';
import { planIntercept } from '../../../src/kube/intercept.js';
import { updateWithRetry } from '../../../src/kube/intercept-live.js';
import { mountContentsTar, readTarEntries } from '../../../src/kube/volumes/copy.js';
import { followVolumes, type VolumeChange } from '../../../src/kube/volumes/follow.js';
import { clusterVolumeLookup, podVolumesInput, resolvePodVolumes } from '../../../src/kube/volumes/live.js';
import {
  resolveVolumes,
  SERVICE_ACCOUNT_MOUNT_PATH,
  type VolumeLayout,
} from '../../../src/kube/volumes/resolve.js';
import { TunnelClient } from '../../../src/tunnel/client.js';
import { openPortForward } from '../../../src/tunnel/portforward.js';
import { apply, clusterImages, kubectl, testNamespace } from '../../support/cluster.js';
import {
  clusterClient,
  containerFiles,
  jwtClaims,
  portForwardAccess,
  readyPod,
  type SeenEntry,
} from './pod-probe.js';

const images = clusterImages();

// Writes emptyDir contents at start; ready once they are there.
const appScript = [
  "const fs = require('fs');",
  "fs.mkdirSync('/data/sub', { recursive: true });",
  "fs.writeFileSync('/data/a.txt', 'alpha', { mode: 0o640 });",
  "fs.writeFileSync('/data/sub/b.bin', Buffer.alloc(100000, 7));",
  "fs.writeFileSync('/data/private', 'mine', { mode: 0o600 });",
  "fs.symlinkSync('a.txt', '/data/link');",
  "fs.writeFileSync('/data/ready', '');",
  'setInterval(() => {}, 1e9);',
].join(' ');

function objects(ns: string): string {
  return `
apiVersion: v1
kind: ConfigMap
metadata: { name: app-config, namespace: ${ns} }
data:
  app.yaml: "port: 8080\\n"
  level: debug
binaryData:
  blob.bin: AAEC/w==
---
apiVersion: v1
kind: Secret
metadata: { name: db, namespace: ${ns} }
stringData: { user: alice, password: "s3cr=t" }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: vol-sa, namespace: ${ns} }
`;
}

function deployment(ns: string, name: string, fsGroup: number | undefined): string {
  const security =
    fsGroup === undefined ? '{}' : `{ fsGroup: ${fsGroup}, runAsUser: 1000, runAsGroup: 1000 }`;
  return `
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${ns} }
spec:
  replicas: 1
  selector: { matchLabels: { app: ${name} } }
  template:
    metadata:
      labels: { app: ${name}, tier: backend }
      annotations: { example.com/owner: team-a, note: "say \\"hi\\"\\nbye" }
    spec:
      serviceAccountName: vol-sa
      securityContext: ${security}
      terminationGracePeriodSeconds: 1
      containers:
        - name: app
          image: ${images.runtime}
          imagePullPolicy: Never
          command: [node, -e, ${JSON.stringify(appScript)}]
          readinessProbe:
            exec: { command: [node, -e, "require('fs').statSync('/data/ready')"] }
            periodSeconds: 1
          resources:
            limits: { cpu: 500m, memory: 128Mi }
            requests: { cpu: 100m }
          volumeMounts:
            - { name: cfg, mountPath: /etc/app }
            - { name: creds-all, mountPath: /etc/app/creds }
            - { name: cfg-items, mountPath: /etc/items }
            - { name: cfg-opt, mountPath: /etc/optional }
            - { name: creds, mountPath: /etc/creds }
            - { name: info, mountPath: /etc/info }
            - { name: mixed, mountPath: /etc/mixed }
            - { name: cfg, mountPath: /etc/level.txt, subPath: level }
            - { name: cfg-items, mountPath: /srv/conf, subPath: conf }
            - { name: cfg, mountPath: /var/empty-sub, subPath: nothere }
            - { name: cache, mountPath: /data }
      volumes:
        - { name: cfg, configMap: { name: app-config } }
        - name: cfg-items
          configMap:
            name: app-config
            defaultMode: 0640
            items: [{ key: app.yaml, path: conf/app.yaml, mode: 0400 }, { key: level, path: level }]
        - { name: cfg-opt, configMap: { name: not-there, optional: true } }
        - name: creds
          secret:
            secretName: db
            defaultMode: 0440
            items: [{ key: password, path: db/password, mode: 0400 }, { key: user, path: user }]
        - { name: creds-all, secret: { secretName: db } }
        - name: info
          downwardAPI:
            items:
              - { path: labels, fieldRef: { fieldPath: metadata.labels } }
              - { path: annotations, fieldRef: { fieldPath: metadata.annotations } }
              - { path: tier, fieldRef: { fieldPath: "metadata.labels['tier']" } }
              - { path: name, fieldRef: { fieldPath: metadata.name } }
              - { path: namespace, fieldRef: { fieldPath: metadata.namespace } }
              - { path: uid, fieldRef: { fieldPath: metadata.uid }, mode: 0600 }
              - { path: cpu_millis, resourceFieldRef: { containerName: app, resource: limits.cpu, divisor: 1m } }
              - { path: cpu_request, resourceFieldRef: { containerName: app, resource: requests.cpu, divisor: 1m } }
              - { path: mem_mi, resourceFieldRef: { containerName: app, resource: limits.memory, divisor: 1Mi } }
              - { path: ephemeral, resourceFieldRef: { containerName: app, resource: limits.ephemeral-storage } }
        - name: mixed
          projected:
            defaultMode: 0444
            sources:
              - configMap: { name: app-config, items: [{ key: app.yaml, path: config/app.yaml }] }
              - secret: { name: db, items: [{ key: password, path: db/password, mode: 0400 }] }
              - secret: { name: absent, optional: true }
              - downwardAPI: { items: [{ path: labels, fieldRef: { fieldPath: metadata.labels } }] }
              - serviceAccountToken: { path: vault/token, audience: vault, expirationSeconds: 600 }
        - { name: cache, emptyDir: {} }
`;
}

/** The text with the kubelet's first-seen time taken out, and that time. */
function withoutSeenTime(text: string): { text: string; seen?: number } {
  const match = /kubernetes\.io\/config\.seen="([^"]*)"/.exec(text);
  if (!match) return { text };
  return {
    text: text.replace(match[0], 'kubernetes.io/config.seen=…'),
    seen: Date.parse(match[1] as string),
  };
}

describe('volumes as the kubelet lays them out', { timeout: 600_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let client: KubeClient;

  before(async () => {
    ns = await testNamespace('devbox-vol');
    client = clusterClient(ns.name);
    await apply(objects(ns.name));
    await apply(deployment(ns.name, 'vol-plain', undefined));
    await apply(deployment(ns.name, 'vol-fs', 2000));
  });

  after(async () => {
    client?.close();
    await ns?.remove();
  });

  /** The pod's view of every generated path of `layout`. */
  async function podView(pod: string, layout: VolumeLayout): Promise<Map<string, SeenEntry>> {
    const roots = new Set<string>();
    for (const d of layout.directories) if (d.path === d.mountPath) roots.add(d.path);
    for (const f of layout.files) if (f.path === f.mountPath) roots.add(f.path);
    return containerFiles(ns.name, pod, 'app', [...roots].sort());
  }

  /** Asserts that `layout` holds exactly what the pod shows; returns the pod's token files. */
  function assertSameAsPod(layout: VolumeLayout, seen: Map<string, SeenEntry>): Map<string, string> {
    const tokens = new Map<string, string>();
    const tokenPaths = new Set(layout.tokens.map((t) => t.path));
    const podFiles = [...seen.values()].filter((e) => e.type === 'file').map((e) => e.path);
    assert.deepEqual(layout.files.map((f) => f.path).sort(), podFiles.sort(), 'the same files');
    for (const f of layout.files) {
      const theirs = seen.get(f.path) as SeenEntry;
      assert.equal(f.mode.toString(8), theirs.mode.toString(8), `mode of ${f.path}`);
      assert.equal(f.uid, theirs.uid, `owner of ${f.path}`);
      assert.equal(f.gid, theirs.gid, `group of ${f.path}`);
      if (tokenPaths.has(f.path)) {
        tokens.set(f.path, Buffer.from(theirs.content ?? '', 'base64').toString('utf8'));
        continue;
      }
      // The container's user may not read some files (0400 root-owned without fsGroup); mode and owner still count.
      if (theirs.unreadable) continue;
      const ours = withoutSeenTime(f.content.toString('utf8'));
      const pods = withoutSeenTime(Buffer.from(theirs.content ?? '', 'base64').toString('utf8'));
      assert.equal(ours.text, pods.text, `content of ${f.path}`);
      if (pods.seen !== undefined) {
        // Approximated by the pod's start time (second precision) from the kubelet's first-seen time.
        assert.ok(Math.abs((ours.seen ?? 0) - pods.seen) < 3000, `config.seen of ${f.path}`);
      }
    }
    const podDirs = [...seen.values()].filter((e) => e.type === 'directory').map((e) => e.path);
    assert.deepEqual(layout.directories.map((d) => d.path).sort(), podDirs.sort(), 'the same directories');
    for (const d of layout.directories) {
      const theirs = seen.get(d.path) as SeenEntry;
      assert.equal(d.mode.toString(8), theirs.mode.toString(8), `mode of directory ${d.path}`);
      assert.equal(d.gid, theirs.gid, `group of directory ${d.path}`);
    }
    return tokens;
  }

  function assertTokens(layout: VolumeLayout, podTokens: Map<string, string>) {
    assert.deepEqual(layout.tokens.map((t) => t.path).sort(), [
      '/etc/mixed/vault/token',
      `${SERVICE_ACCOUNT_MOUNT_PATH}/token`,
    ]);
    for (const t of layout.tokens) {
      const ours = jwtClaims(layout.files.find((f) => f.path === t.path)?.content.toString('utf8') ?? '');
      const theirs = jwtClaims(podTokens.get(t.path) ?? '');
      assert.equal(ours.sub, `system:serviceaccount:${ns.name}:vol-sa`, `subject of ${t.path}`);
      assert.deepEqual(ours.aud, theirs.aud, `audience of ${t.path}`);
      assert.equal(ours.iss, theirs.iss);
      assert.ok(Date.parse(t.expiresAt) > Date.now());
    }
    const vault = layout.files.find((f) => f.path === '/etc/mixed/vault/token');
    assert.deepEqual(jwtClaims(vault?.content.toString('utf8') ?? '').aud, ['vault']);
  }

  for (const [name, fsGroup] of [
    ['vol-plain', undefined],
    ['vol-fs', 2000],
  ] as const) {
    it(`${name}: every generated file, directory, mode and owner equals the pod's${fsGroup ? ' (fsGroup)' : ''}`, async () => {
      const pod = await readyPod(ns.name, `app=${name}`);
      const layout = await resolvePodVolumes(client, ns.name, pod, 'app');
      const tokens = assertSameAsPod(layout, await podView(pod, layout));
      assertTokens(layout, tokens);
      // Spot checks that the comparison covered the interesting cases.
      const paths = new Set(layout.files.map((f) => f.path));
      for (const p of [
        '/etc/app/blob.bin',
        '/etc/app/creds/password',
        '/etc/items/conf/app.yaml',
        '/etc/creds/db/password',
        '/etc/info/labels',
        '/etc/info/ephemeral',
        '/etc/mixed/labels',
        '/etc/level.txt',
        '/srv/conf/app.yaml',
        `${SERVICE_ACCOUNT_MOUNT_PATH}/ca.crt`,
        `${SERVICE_ACCOUNT_MOUNT_PATH}/namespace`,
      ]) {
        assert.ok(paths.has(p), `${p} is produced`);
      }
      assert.ok(layout.directories.some((d) => d.path === '/var/empty-sub'));
      assert.ok(layout.directories.some((d) => d.path === '/etc/optional'));
      assert.deepEqual(
        layout.copies.map((c) => [c.mountPath, c.type, c.agentPath]),
        [['/data', 'emptyDir', '/devbox-pod/data']],
      );
      assert.deepEqual(layout.warnings, [
        "downward API file annotations: the kubelet's kubernetes.io/config.seen annotation is approximated by the pod's start time",
      ]);
    });
  }

  it('gives the same files from the pod template (token mount added as admission does)', async () => {
    const pod = await readyPod(ns.name, 'app=vol-fs');
    const live = (await client.get('Pod', ns.name, pod)) as V1Pod;
    const fromPod = await resolveVolumes(
      await podVolumesInput(client, live, 'app'),
      clusterVolumeLookup(client),
    );
    const deploymentObject = (await client.get('Deployment', ns.name, 'vol-fs')) as V1Deployment;
    const podInput = await podVolumesInput(client, live, 'app');
    const fromTemplate = await resolveVolumes(
      {
        pod: deploymentObject.spec?.template ?? {},
        container: 'app',
        namespace: ns.name,
        livePod: live,
        nodeAllocatable: podInput.nodeAllocatable,
      },
      clusterVolumeLookup(client),
    );
    const strip = (l: VolumeLayout) =>
      l.files.map((f) => ({
        path: f.path,
        mode: f.mode,
        gid: f.gid,
        content: f.path.endsWith('token') ? '' : f.content.toString('base64'),
      }));
    assert.deepEqual(strip(fromTemplate), strip(fromPod));
    assert.deepEqual(
      fromTemplate.directories.map((d) => [d.path, d.mode]),
      fromPod.directories.map((d) => [d.path, d.mode]),
    );
  });

  it('follows a ConfigMap change within 5 s, and matches the pod once the kubelet caught up', async (t) => {
    const pod = await readyPod(ns.name, 'app=vol-plain');
    const live = (await client.get('Pod', ns.name, pod)) as V1Pod;
    const input = await podVolumesInput(client, live, 'app');
    const initial = await resolveVolumes(input, clusterVolumeLookup(client));
    const stop = new AbortController();
    const changes: { at: number; change: VolumeChange }[] = [];
    let latest = initial;
    const following = followVolumes(
      client,
      input,
      (change) => {
        changes.push({ at: Date.now(), change });
        latest = change.layout;
      },
      stop.signal,
      { initial, podName: pod },
    );
    try {
      // Let the watches open before changing anything.
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(changes.length, 0, 'nothing reported while nothing changes');
      const changedAt = Date.now();
      await kubectl([
        '-n',
        ns.name,
        'patch',
        'configmap',
        'app-config',
        '--type=merge',
        '-p',
        '{"data":{"level":"warn"}}',
      ]);
      const deadline = changedAt + 5000;
      while (!changes.some((c) => c.change.files.some((f) => f.path === '/etc/app/level'))) {
        assert.ok(Date.now() < deadline, 'the change is reported within 5 s');
        await new Promise((r) => setTimeout(r, 50));
      }
      const report = changes.find((c) => c.change.files.some((f) => f.path === '/etc/app/level'));
      assert.ok(report && report.at - changedAt < 5000);
      t.diagnostic(`change reported ${report.at - changedAt} ms after kubectl patch started`);
      const changedPaths = report.change.files.map((f) => f.path).sort();
      // Whole-volume mounts change; the subPath mount keeps its first content, as in the pod.
      assert.deepEqual(changedPaths, ['/etc/app/level', '/etc/items/level']);
      // ...and a subPath directory of a changed volume loses its files, as the kubelet's old generation is deleted.
      assert.deepEqual(report.change.removed, ['/srv/conf/app.yaml']);

      // The kubelet updates the pod's files on its own schedule (up to its sync period and cache TTL).
      const waitUntil = Date.now() + 150_000;
      for (;;) {
        const seen = await containerFiles(ns.name, pod, 'app', ['/etc/app/level', '/etc/level.txt']);
        const level = Buffer.from(seen.get('/etc/app/level')?.content ?? '', 'base64').toString();
        if (level === 'warn') {
          assert.equal(Buffer.from(seen.get('/etc/level.txt')?.content ?? '', 'base64').toString(), 'debug');
          break;
        }
        assert.equal(level, 'debug', 'old content until the kubelet swaps the volume');
        assert.ok(Date.now() < waitUntil, 'the kubelet updated the pod');
        await new Promise((r) => setTimeout(r, 2000));
      }
      const tokens = assertSameAsPod(latest, await podView(pod, latest));
      assert.equal(tokens.size, 2);
    } finally {
      stop.abort();
      await following;
    }
  });

  it('copies emptyDir contents through a real agent, equal to what the pod holds', async () => {
    const bundle = readFileSync(new URL('../../../bundle/agent.mjs', import.meta.url), 'utf8');
    const token = randomBytes(16).toString('hex');
    await client.create('ConfigMap', {
      metadata: { name: 'devbox-agent', namespace: ns.name },
      data: { 'agent.mjs': bundle },
    });
    await client.create('Secret', {
      metadata: { name: 'devbox-agent-token', namespace: ns.name },
      stringData: { token },
    });
    let tunnelPort = 0;
    await updateWithRetry(
      async () => (await client.get('Deployment', ns.name, 'vol-fs')) as V1Deployment,
      (current) => {
        const plan = planIntercept({
          workload: { ...current, kind: 'Deployment' },
          services: [],
          container: 'app',
          agent: {
            image: images.runtime,
            imagePullPolicy: 'Never',
            bundleConfigMap: 'devbox-agent',
            bundleSha256: createHash('sha256').update(bundle).digest('hex'),
            tokenSecret: 'devbox-agent-token',
          },
          holder: { user: 'test', host: 'test', startedAt: new Date().toISOString(), id: 'vol' },
        });
        tunnelPort = plan.tunnelPort;
        return plan.workload as V1Deployment;
      },
      (next) => client.replace('Deployment', next),
    );
    await kubectl(['-n', ns.name, 'rollout', 'status', 'deployment/vol-fs', '--timeout=120s'], {
      timeoutMs: 130_000,
    });
    const pod = await readyPod(ns.name, 'app=vol-fs');

    const layout = await resolvePodVolumes(client, ns.name, pod, 'app');
    const copy = layout.copies.find((c) => c.mountPath === '/data');
    assert.ok(copy);
    const transport = await openPortForward({
      ...(await portForwardAccess(client)),
      namespace: ns.name,
      pod,
      port: tunnelPort,
    });
    const tunnel = await TunnelClient.connect(transport, { token });
    try {
      const copied = mountContentsTar(tunnel, copy).then(readTarEntries);
      const entries = await Promise.race([
        copied,
        new Promise<never>((_, reject) =>
          setTimeout(() => reject(new Error('copy took over 60 s')), 60_000).unref(),
        ),
      ]);
      const seen = await containerFiles(ns.name, pod, 'app', ['/data'], { lstat: true });
      assert.deepEqual(
        entries.map((e) => e.path).sort(),
        [...seen.keys()].sort(),
        'the same paths, the mount point included',
      );
      for (const e of entries) {
        const theirs = seen.get(e.path) as SeenEntry;
        assert.equal(e.type, theirs.type, `type of ${e.path}`);
        if (e.type !== 'symlink')
          assert.equal(e.mode.toString(8), theirs.mode.toString(8), `mode of ${e.path}`);
        assert.equal(e.uid, theirs.uid, `owner of ${e.path}`);
        assert.equal(e.gid, theirs.gid, `group of ${e.path}`);
        if (e.type === 'file')
          assert.equal(e.content?.toString('base64'), theirs.content, `content of ${e.path}`);
        if (e.type === 'symlink') assert.equal(e.linkname, theirs.linkname);
      }
      assert.equal(entries.find((e) => e.path === '/data/sub/b.bin')?.content?.length, 100_000);
    } finally {
      await tunnel.close();
    }
  });
});
