/**
 * devbox's env resolution against the kubelet's own: a pod using every env form runs in
 * the local cluster, and what `resolvePodEnv` computes must equal what a process started
 * in the container sees, as sets.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { KubeClient } from '../../../src/kube/client.js';
import { resolvePodEnv } from '../../../src/kube/env/live.js';
import { apply, clusterImages, docker, testNamespace } from '../../support/cluster.js';
import { clusterClient, containerEnv, readyPod } from './pod-probe.js';

const images = clusterImages();

function manifests(ns: string, enableServiceLinks?: boolean): string {
  const links = enableServiceLinks === undefined ? '' : `enableServiceLinks: ${enableServiceLinks}`;
  const name = enableServiceLinks === false ? 'envpod-nolinks' : 'envpod';
  return `
apiVersion: v1
kind: ConfigMap
metadata: { name: env-cm, namespace: ${ns} }
data:
  GREETING: hello
  MODE: from-configmap
  dotted.key: dots-are-fine
  with-dash: dash
  OVERRIDDEN: from-envFrom
---
apiVersion: v1
kind: Secret
metadata: { name: env-secret, namespace: ${ns} }
stringData:
  DB_PASSWORD: "p@ss word=1"
  DB_USER: alice
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: env-sa, namespace: ${ns} }
---
apiVersion: v1
kind: Service
metadata: { name: api-svc, namespace: ${ns} }
spec:
  selector: { app: nothing }
  ports:
    - { name: http, port: 80, targetPort: 8080 }
    - { name: dns-udp, port: 53, protocol: UDP }
---
apiVersion: v1
kind: Service
metadata: { name: headless, namespace: ${ns} }
spec:
  clusterIP: None
  selector: { app: nothing }
  ports: [{ port: 5432 }]
---
apiVersion: v1
kind: Pod
metadata:
  name: ${name}
  namespace: ${ns}
  labels: { app: envpod, tier: backend }
  annotations: { example.com/owner: team-a, note: "say \\"hi\\"\\nbye" }
spec:
  serviceAccountName: env-sa
  ${links}
  terminationGracePeriodSeconds: 1
  containers:
    - name: app
      image: ${images.runtime}
      imagePullPolicy: Never
      command: [node, -e, "setInterval(() => {}, 1e9)"]
      resources:
        limits: { cpu: 500m, memory: 128Mi }
        requests: { cpu: 100m }
      envFrom:
        - configMapRef: { name: env-cm }
          prefix: CM_
        - secretRef: { name: env-secret }
        - configMapRef: { name: missing-cm, optional: true }
      env:
        - { name: PLAIN, value: plain-value }
        - { name: EMPTY, value: "" }
        - name: FROM_CM
          valueFrom: { configMapKeyRef: { name: env-cm, key: GREETING } }
        - name: FROM_SECRET
          valueFrom: { secretKeyRef: { name: env-secret, key: DB_USER } }
        - name: OPT_MISSING_CM
          valueFrom: { configMapKeyRef: { name: missing-cm, key: x, optional: true } }
        - name: OPT_MISSING_KEY
          valueFrom: { secretKeyRef: { name: env-secret, key: nope, optional: true } }
        - name: CM_OVERRIDDEN
          value: from-env
        - name: POD_NAME
          valueFrom: { fieldRef: { fieldPath: metadata.name } }
        - name: POD_NAMESPACE
          valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
        - name: POD_UID
          valueFrom: { fieldRef: { fieldPath: metadata.uid } }
        # Whole label and annotation maps are for volumes only; env reads single keys.
        - name: LABEL_TIER
          valueFrom: { fieldRef: { fieldPath: "metadata.labels['tier']" } }
        - name: OWNER
          valueFrom: { fieldRef: { fieldPath: "metadata.annotations['example.com/owner']" } }
        - name: POD_IP
          valueFrom: { fieldRef: { fieldPath: status.podIP } }
        - name: POD_IPS
          valueFrom: { fieldRef: { fieldPath: status.podIPs } }
        - name: HOST_IP
          valueFrom: { fieldRef: { fieldPath: status.hostIP } }
        - name: HOST_IPS
          valueFrom: { fieldRef: { fieldPath: status.hostIPs } }
        - name: NODE_NAME
          valueFrom: { fieldRef: { fieldPath: spec.nodeName } }
        - name: SA_NAME
          valueFrom: { fieldRef: { fieldPath: spec.serviceAccountName } }
        - name: CPU_MILLIS
          valueFrom: { resourceFieldRef: { resource: limits.cpu, divisor: 1m } }
        - name: CPU_CORES
          valueFrom: { resourceFieldRef: { resource: limits.cpu } }
        - name: CPU_REQUEST_MILLIS
          valueFrom: { resourceFieldRef: { resource: requests.cpu, divisor: 1m } }
        - name: MEM_MI
          valueFrom: { resourceFieldRef: { resource: limits.memory, divisor: 1Mi } }
        - name: MEM_REQUEST
          valueFrom: { resourceFieldRef: { resource: requests.memory } }
        - name: EPHEMERAL_LIMIT_MI
          valueFrom: { resourceFieldRef: { resource: limits.ephemeral-storage, divisor: 1Mi } }
        - name: EXPANDED
          value: "$(PLAIN)/$(FROM_CM)/$(CM_GREETING)/$(KUBERNETES_SERVICE_HOST)"
        - name: LATER_REF
          value: "$(DEFINED_LATER)"
        - { name: DEFINED_LATER, value: late }
        - name: ESCAPED
          value: "$$(PLAIN) and $$$$ and $(NOT_DEFINED) and $(unterminated"
        - name: SERVICE_REF
          value: "http://$(API_SVC_SERVICE_HOST):$(API_SVC_SERVICE_PORT_HTTP)"
        - name: SECRET_REF
          value: "user=$(FROM_SECRET)"
`;
}

/** Names the image's own config sets, which the kubelet does not. */
async function imageEnvNames(): Promise<Set<string>> {
  const { stdout, code } = await docker([
    'image',
    'inspect',
    images.runtime,
    '--format',
    '{{json .Config.Env}}',
  ]);
  const names = new Set(['PATH', 'HOSTNAME', 'HOME']);
  if (code === 0) for (const kv of JSON.parse(stdout) as string[]) names.add(kv.slice(0, kv.indexOf('=')));
  return names;
}

describe('env as the kubelet resolves it', { timeout: 240_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let client: KubeClient;
  let runtimeOnly: Set<string>;

  before(async () => {
    ns = await testNamespace('devbox-env');
    client = clusterClient(ns.name);
    runtimeOnly = await imageEnvNames();
    await apply(manifests(ns.name));
    await apply(manifests(ns.name, false).split('---').slice(-1)[0] as string);
  });

  after(async () => {
    client?.close();
    await ns?.remove();
  });

  async function compare(pod: string) {
    await readyPod(ns.name, `app=envpod`);
    const seen = await containerEnv(ns.name, pod, 'app');
    const resolved = await resolvePodEnv(client, ns.name, pod, 'app');
    const ours = Object.fromEntries(resolved.vars.map((v) => [v.name, v.value]));
    const theirs = Object.fromEntries(
      Object.entries(seen).filter(([name]) => !runtimeOnly.has(name) || name in ours),
    );
    assert.deepEqual(ours, theirs);
    // Every var once: the kubelet gives each name one value.
    assert.equal(resolved.vars.length, new Set(resolved.vars.map((v) => v.name)).size);
    return { ours, resolved };
  }

  it('equals the environment of a process in the container (service links on by default)', async () => {
    const { ours, resolved } = await compare('envpod');
    // The forms under test are really there, not vacuously equal.
    assert.equal(ours.ESCAPED, '$(PLAIN) and $$ and $(NOT_DEFINED) and $(unterminated');
    assert.equal(ours.LATER_REF, '$(DEFINED_LATER)');
    assert.equal(ours.CM_OVERRIDDEN, 'from-env');
    assert.equal(ours['CM_dotted.key'], 'dots-are-fine');
    assert.equal(ours.DB_PASSWORD, 'p@ss word=1');
    assert.equal(ours.SA_NAME, 'env-sa');
    assert.equal(ours.CPU_MILLIS, '500');
    assert.equal(ours.CPU_CORES, '1');
    assert.equal(ours.MEM_MI, '128');
    assert.ok(Number(ours.EPHEMERAL_LIMIT_MI) > 0, 'no ephemeral-storage limit: the node allocatable');
    assert.match(ours.SERVICE_REF ?? '', /^http:\/\/10\.\d+\.\d+\.\d+:80$/);
    assert.ok('API_SVC_PORT_53_UDP_PROTO' in ours);
    assert.ok(!('HEADLESS_SERVICE_HOST' in ours));
    assert.ok(!('OPT_MISSING_CM' in ours) && !('OPT_MISSING_KEY' in ours));
    assert.ok(resolved.vars.find((v) => v.name === 'SECRET_REF')?.secret);
  });

  it('equals it with enableServiceLinks: false (only the master Service)', async () => {
    const { ours } = await compare('envpod-nolinks');
    assert.ok(!('API_SVC_SERVICE_HOST' in ours));
    assert.ok('KUBERNETES_SERVICE_HOST' in ours);
    assert.equal(ours.SERVICE_REF, 'http://$(API_SVC_SERVICE_HOST):$(API_SVC_SERVICE_PORT_HTTP)');
  });
});
