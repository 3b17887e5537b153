import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container, V1PodSpec, V1Service } from '@kubernetes/client-node';
import {
  AGENT_CONTAINER,
  ANNOTATION_ORIGINAL,
  ANNOTATION_SESSION,
  asSessionRecord,
  type InterceptRequest,
  isSameHolder,
  planIntercept,
  restoreService,
  restoreWorkload,
  type SessionHolder,
  sessionOf,
  sessionsOf,
  withClaim,
} from '../../../src/kube/intercept.js';
import type { Workload } from '../../../src/kube/workload.js';
import { agentStartCommand } from '../../../src/tunnel/agent-contract.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { service } from './fixtures.js';

const holder: SessionHolder = {
  user: 'alice',
  host: 'laptop',
  startedAt: '2026-05-01T10:00:00Z',
  id: 's-3f2a',
};
const agent = {
  image: 'node:22-slim',
  bundleConfigMap: 'devbox-agent-deploy-api',
  bundleSha256: 'ab'.repeat(32),
  tokenSecret: 'devbox-agent-deploy-api',
};

/** A Deployment the way the API server returns it: defaulted, with server-managed fields. */
function realisticDeployment(): Workload {
  const app: V1Container = {
    name: 'app',
    image: 'registry.local/api:1.4.2',
    ports: [
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { containerPort: 9090, protocol: 'TCP' },
      { name: 'gossip', containerPort: 7946, protocol: 'UDP' },
    ],
    env: [{ name: 'MODE', value: 'prod' }],
    resources: { limits: { memory: '256Mi' }, requests: { cpu: '100m', memory: '128Mi' } },
    readinessProbe: {
      httpGet: { path: '/healthz', port: 47001, scheme: 'HTTP' },
      timeoutSeconds: 1,
      periodSeconds: 10,
      successThreshold: 1,
      failureThreshold: 3,
    },
    volumeMounts: [{ name: 'cfg', mountPath: '/etc/api' }],
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
  };
  const shipper: V1Container = {
    name: 'log-shipper',
    image: 'registry.local/shipper:2',
    ports: [{ name: 'metrics', containerPort: 2020, protocol: 'TCP' }],
    resources: {},
    terminationMessagePath: '/dev/termination-log',
    terminationMessagePolicy: 'File',
    imagePullPolicy: 'IfNotPresent',
  };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'api',
      namespace: 'shop',
      uid: '6a1c0e4e-8f1e-4b8e-9a55-2d7f3c1b9e01',
      resourceVersion: '48213',
      generation: 4,
      creationTimestamp: '2026-04-01T08:00:00Z' as never,
      labels: { app: 'api' },
      annotations: {
        'deployment.kubernetes.io/revision': '4',
        'kubectl.kubernetes.io/last-applied-configuration': '{"apiVersion":"apps/v1","kind":"Deployment"}\n',
      },
      managedFields: [{ manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'apps/v1' }],
    },
    spec: {
      replicas: 2,
      selector: { matchLabels: { app: 'api' } },
      template: {
        metadata: {
          labels: { app: 'api', tier: 'backend' },
          annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-04-20T09:00:00Z' },
        },
        spec: {
          containers: [app, shipper],
          restartPolicy: 'Always',
          terminationGracePeriodSeconds: 30,
          dnsPolicy: 'ClusterFirst',
          securityContext: {},
          schedulerName: 'default-scheduler',
          volumes: [{ name: 'cfg', configMap: { name: 'api-cfg', defaultMode: 420 } }],
        },
      },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } },
      revisionHistoryLimit: 10,
      progressDeadlineSeconds: 600,
    },
    status: { observedGeneration: 4, replicas: 2, readyReplicas: 2 },
  } as Workload;
}

function services(): V1Service[] {
  return [
    // Named target port, plus a second port with a numeric target the container declares.
    service(
      'shop',
      'api',
      '10.96.40.1',
      [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'metrics', port: 9090, targetPort: 9090 },
      ],
      { app: 'api' },
    ),
    // Numeric target port reaching the same container port as `api`'s named one.
    service('shop', 'api-internal', '10.96.40.2', [{ port: 8080, targetPort: 8080 }], {
      app: 'api',
      tier: 'backend',
    }),
    // UDP and a port of another container: left alone.
    service(
      'shop',
      'api-gossip',
      'None',
      [{ name: 'gossip', port: 7946, protocol: 'UDP', targetPort: 'gossip' }],
      { app: 'api' },
    ),
    service('shop', 'api-logs', '10.96.40.4', [{ port: 2020, targetPort: 'metrics' }], { app: 'api' }),
    // Another workload's Service.
    service('shop', 'web', '10.96.40.5', [{ port: 80 }], { app: 'web' }),
  ];
}

function app0Ports(w: Workload) {
  return w.spec?.template?.spec?.containers[0]?.ports;
}

function request(w: Workload = realisticDeployment(), svcs: V1Service[] = services()): InterceptRequest {
  const container = w.spec?.template?.spec?.containers[0]?.name ?? '';
  return { workload: w, services: svcs, container, agent, holder };
}

// Plain API JSON, walked freely by the simulated server below.
// biome-ignore lint/suspicious/noExplicitAny: arbitrary API JSON
type Json = any;
type Obj = { metadata?: Record<string, Json>; spec?: Json; status?: Json };

/**
 * What the API server does with a PUT: checks the precondition, applies defaults to
 * what it does not know yet, bumps resourceVersion (and generation and the
 * Deployment revision when the spec changed), keeps status.
 */
function serverWrite<T extends Obj>(stored: T, written: T): T {
  assert.equal(written.metadata?.resourceVersion, stored.metadata?.resourceVersion, 'stale write');
  const out = structuredClone(written);
  const meta = out.metadata as Record<string, Json>;
  meta.resourceVersion = String(Number(stored.metadata?.resourceVersion) + 1);
  meta.managedFields = [
    ...(stored.metadata?.managedFields ?? []),
    { manager: 'devbox', operation: 'Update' },
  ];
  const specChanged = JSON.stringify(stored.spec) !== JSON.stringify(written.spec);
  if (specChanged && meta.generation !== undefined) meta.generation = (stored.metadata?.generation ?? 0) + 1;
  const revision = stored.metadata?.annotations?.['deployment.kubernetes.io/revision'];
  if (specChanged && revision)
    meta.annotations = {
      ...meta.annotations,
      'deployment.kubernetes.io/revision': String(Number(revision) + 1),
    };
  const podSpec: V1PodSpec | undefined = out.spec?.template?.spec;
  for (const c of podSpec?.containers ?? []) {
    c.terminationMessagePath ??= '/dev/termination-log';
    c.imagePullPolicy ??= 'IfNotPresent';
    if (c.readinessProbe) {
      c.readinessProbe.timeoutSeconds ??= 1;
      c.readinessProbe.successThreshold ??= 1;
    }
  }
  for (const v of podSpec?.volumes ?? []) if (v.configMap) v.configMap.defaultMode ??= 420;
  out.status = stored.status;
  return out;
}

/** The object without what the server manages. */
function userFields<T extends Obj>(obj: T): T {
  const out = structuredClone(obj);
  const meta = out.metadata as Record<string, Json>;
  delete meta.resourceVersion;
  delete meta.generation;
  delete meta.managedFields;
  if (meta.annotations) delete meta.annotations['deployment.kubernetes.io/revision'];
  delete out.status;
  return out;
}

/** Runs up and down through the simulated server; returns the final objects. */
function roundTrip(w: Workload, svcs: V1Service[]) {
  const plan = planIntercept(request(w, svcs));
  const liveWorkload = serverWrite(w, plan.workload);
  const liveServices = new Map(svcs.map((s) => [s.metadata?.name, s]));
  for (const s of plan.services)
    liveServices.set(s.metadata?.name, serverWrite(liveServices.get(s.metadata?.name) as V1Service, s));
  const finalServices = [...liveServices.values()].map((s) => {
    const r = restoreService(s);
    return r ? serverWrite(s, r.object) : s;
  });
  const restored = restoreWorkload(liveWorkload);
  assert.ok(restored);
  return {
    plan,
    liveWorkload,
    restored,
    finalWorkload: serverWrite(liveWorkload, restored.object),
    finalServices,
  };
}

describe('claim', () => {
  it('changes only the session annotation, and carries the pid', () => {
    const w = realisticDeployment();
    const claimed = withClaim(w, { ...holder, pid: 4242 });
    assert.deepEqual(claimed.spec, w.spec);
    assert.equal(claimed.metadata?.resourceVersion, w.metadata?.resourceVersion);
    assert.deepEqual(sessionOf(claimed), asSessionRecord({ ...holder, pid: 4242 }));
    assert.deepEqual(
      { ...claimed.metadata?.annotations, [ANNOTATION_SESSION]: undefined },
      { ...w.metadata?.annotations, [ANNOTATION_SESSION]: undefined },
    );
  });

  it('lets the claiming session plan its intercept, and no other session', () => {
    const claimed = withClaim(realisticDeployment(), holder);
    assert.ok(planIntercept(request(claimed)).workload);
    const other = { ...holder, user: 'bob', id: 's-9999' };
    assert.throws(
      () => planIntercept({ ...request(claimed), holder: other }),
      (err: unknown) =>
        isDevboxError(err, 'CONFLICT') &&
        /in use by alice@laptop .*\(session s-3f2a\)/.test((err as Error).message),
    );
    // Once the agent is written (its record present), even the claimant's replan is refused.
    const planned = planIntercept(request(claimed)).workload;
    assert.throws(
      () => planIntercept(request(planned)),
      (err: unknown) => isDevboxError(err, 'CONFLICT'),
    );
  });

  it('refuses a pid that is not a positive integer', () => {
    const w = realisticDeployment();
    w.metadata = {
      ...w.metadata,
      annotations: { [ANNOTATION_SESSION]: JSON.stringify({ ...holder, pid: -1 }) },
    };
    assert.throws(
      () => sessionOf(w),
      (err: unknown) => isDevboxError(err) && /pid/.test((err as Error).message),
    );
  });
});

describe('planIntercept', () => {
  it('adds a restricted agent container, hands it the port names and retargets the other TCP Service ports', () => {
    const w = realisticDeployment();
    const svcs = services();
    const before = structuredClone([w, svcs]);
    const plan = planIntercept(request(w, svcs));
    assert.deepEqual([w, svcs], before, 'inputs untouched');

    // 47001 is a probe port of the app, so allocation skips it.
    assert.deepEqual(plan.intercepts, [
      { listenPort: 47002, appPort: 8080 },
      { listenPort: 47003, appPort: 9090 },
    ]);
    assert.equal(plan.tunnelPort, 47000);
    assert.deepEqual(
      plan.ports.map((p) => `${p.service}:${p.port}->${p.agentPortName}(${p.agentPort})->${p.appPort}`),
      [
        'api:80->http(47002)->8080',
        'api:9090->dbx-9090(47003)->9090',
        'api-internal:8080->http(47002)->8080',
      ],
    );
    assert.deepEqual(plan.skipped, [
      {
        service: 'api-gossip',
        port: 7946,
        protocol: 'UDP',
        reason: 'UDP is not intercepted; it keeps reaching the pod',
      },
    ]);
    assert.equal(plan.rollout, 'automatic');
    // 9090 has no name: its Service can only follow after the rollout, and the user is told how to fix that.
    assert.deepEqual(plan.warnings, [
      "container port 9090 of app has no name, so service/api:9090 can only move to the agent after the rollout: clients that connect in between stay with the pod's app until they reconnect. Name the container port (e.g. `name: http`) for a seamless switch",
    ]);

    const spec = plan.workload.spec?.template?.spec as V1PodSpec;
    assert.deepEqual(
      spec.containers.map((c) => c.name),
      ['app', 'log-shipper', AGENT_CONTAINER],
    );
    const a = spec.containers[2] as V1Container;
    assert.equal(a.image, 'node:22-slim');
    assert.deepEqual(a.command, agentStartCommand('/devbox/agent.mjs'));
    assert.deepEqual(a.env, [
      {
        name: 'DEVBOX_AGENT_TOKEN',
        valueFrom: { secretKeyRef: { name: 'devbox-agent-deploy-api', key: 'token' } },
      },
      { name: 'DEVBOX_INTERCEPT', value: '47002:8080,47003:9090' },
      { name: 'DEVBOX_TUNNEL_PORT', value: '47000' },
      { name: 'DEVBOX_HEALTH_PORT', value: '47004' },
      { name: 'DEVBOX_SESSION', value: holder.id },
      { name: 'DEVBOX_AGENT_SHA256', value: 'ab'.repeat(32) },
    ]);
    assert.deepEqual(a.ports, [
      { name: 'http', containerPort: 47002, protocol: 'TCP' },
      { name: 'dbx-9090', containerPort: 47003, protocol: 'TCP' },
    ]);
    assert.deepEqual(a.volumeMounts, [
      { name: 'devbox-agent-bundle', mountPath: '/devbox', readOnly: true },
      { name: 'cfg', mountPath: '/devbox-pod/etc/api', readOnly: true },
    ]);
    assert.deepEqual(plan.files, [
      { mountPath: '/etc/api', agentPath: '/devbox-pod/etc/api', volume: 'cfg' },
    ]);
    assert.deepEqual(spec.volumes?.at(-1), {
      name: 'devbox-agent-bundle',
      configMap: { name: 'devbox-agent-deploy-api' },
    });
    assert.deepEqual(a.resources?.requests, { cpu: '10m', memory: '32Mi' });
    // The `restricted` Pod Security level, container by container.
    const sc = a.securityContext;
    assert.equal(sc?.runAsNonRoot, true);
    assert.ok((sc?.runAsUser ?? 0) > 0);
    assert.equal(sc?.allowPrivilegeEscalation, false);
    assert.deepEqual(sc?.capabilities, { drop: ['ALL'] });
    assert.deepEqual(sc?.seccompProfile, { type: 'RuntimeDefault' });
    assert.equal(sc?.privileged, undefined);
    assert.equal(
      a.ports?.some((p) => 'hostPort' in p),
      false,
    );
    // Probes go to a port of their own: on an intercept port they would reach the session.
    assert.deepEqual(a.readinessProbe?.tcpSocket, { port: 47004 });

    // Nothing else in the template moved: the app's port 8080 only lost its name to the agent.
    const orig = structuredClone(w.spec?.template?.spec as V1PodSpec);
    delete orig.containers[0]?.ports?.[0]?.name;
    assert.deepEqual(spec.containers.slice(0, 2), orig.containers);
    assert.deepEqual(plan.workload.spec?.template?.metadata, w.spec?.template?.metadata);

    const byName = new Map(plan.services.map((s) => [s.metadata?.name, s]));
    assert.deepEqual([...byName.keys()], ['api', 'api-internal']);
    // `http` resolves in old pods to the app and in new pods to the agent: only the numeric
    // targets change, and api-internal's change keeps its endpoints, so it goes before the rollout.
    assert.deepEqual(
      byName.get('api')?.spec?.ports?.map((p) => p.targetPort),
      ['http', 'dbx-9090'],
    );
    assert.deepEqual(
      byName.get('api-internal')?.spec?.ports?.map((p) => p.targetPort),
      ['http'],
    );
    assert.deepEqual(plan.servicesFirst, ['api-internal']);
  });

  it('leaves a Service that names the port alone, gives probes and hooks the number, and undoes it all', () => {
    const w = realisticDeployment();
    const app = w.spec?.template?.spec?.containers[0] as V1Container;
    app.livenessProbe = { tcpSocket: { port: 'http' }, periodSeconds: 5 };
    app.lifecycle = { preStop: { httpGet: { path: '/drain', port: 'http' } } };
    const only = [
      service('shop', 'api', '10.96.40.1', [{ name: 'http', port: 80, targetPort: 'http' }], { app: 'api' }),
    ];
    const { plan, finalWorkload, restored } = roundTrip(w, only);
    assert.deepEqual(plan.services, [], 'no Service changes');
    const patchedApp = plan.workload.spec?.template?.spec?.containers[0] as V1Container;
    assert.deepEqual(patchedApp.livenessProbe?.tcpSocket, { port: 8080 });
    assert.deepEqual(patchedApp.lifecycle?.preStop?.httpGet?.port, 8080);
    assert.deepEqual(patchedApp.readinessProbe, app.readinessProbe, 'numeric probes untouched');
    assert.equal(restored.exact, true);
    assert.deepEqual(userFields(finalWorkload), userFields(w));
  });

  it('keeps a port name an excluded Service targets, and uses a dbx- name instead', () => {
    const w = realisticDeployment();
    const plan = planIntercept({ ...request(w), excludeServices: ['api'] });
    assert.deepEqual(
      plan.ports.map((p) => `${p.service}:${p.port}->${p.agentPortName}`),
      ['api-internal:8080->dbx-8080'],
    );
    assert.deepEqual(plan.workload.spec?.template?.spec?.containers[0]?.ports, app0Ports(w));
    assert.deepEqual(plan.servicesFirst, []);
  });

  it("mounts the app's volumes read-only for the agent and runs it as the app's non-root user", () => {
    const w = realisticDeployment();
    const spec = w.spec?.template?.spec as V1PodSpec;
    const app = spec.containers[0] as V1Container;
    app.volumeMounts = [
      { name: 'cfg', mountPath: '/etc/api/app.yaml', subPath: 'app.yaml' },
      { name: 'data', mountPath: '/data', subPathExpr: '$(POD_NAME)' },
      { name: 'cfg', mountPath: 'relative', readOnly: false, mountPropagation: 'HostToContainer' },
    ];
    app.securityContext = { runAsUser: 1000 };
    spec.securityContext = { runAsGroup: 3000, fsGroup: 2000 };
    const plan = planIntercept(request(w));
    const agentSpec = plan.workload.spec?.template?.spec?.containers.at(-1);
    assert.deepEqual(agentSpec?.volumeMounts?.slice(1), [
      { name: 'cfg', mountPath: '/devbox-pod/etc/api/app.yaml', readOnly: true, subPath: 'app.yaml' },
      { name: 'cfg', mountPath: '/devbox-pod/relative', readOnly: true },
    ]);
    assert.deepEqual(
      plan.warnings.at(-1),
      'the volume mounted at /data uses subPathExpr; the agent cannot serve its contents',
    );
    assert.equal(agentSpec?.securityContext?.runAsUser, 1000);
    assert.equal(agentSpec?.securityContext?.runAsGroup, 3000);
    const root = realisticDeployment();
    ((root.spec!.template.spec as V1PodSpec).containers[0] as V1Container).securityContext = {
      runAsUser: 0,
    };
    assert.equal(
      planIntercept(request(root)).workload.spec?.template?.spec?.containers.at(-1)?.securityContext
        ?.runAsUser,
      65532,
    );
  });

  it('records the original and the session on the objects it changes', () => {
    const w = realisticDeployment();
    const plan = planIntercept(request(w));
    const annotations = plan.workload.metadata?.annotations ?? {};
    const original = JSON.parse(annotations[ANNOTATION_ORIGINAL] as string);
    assert.deepEqual(original.spec, w.spec);
    assert.deepEqual(original.agent, { container: AGENT_CONTAINER, volumes: ['devbox-agent-bundle'] });
    assert.deepEqual(original.services, ['api', 'api-internal']);
    assert.deepEqual(sessionsOf(plan.workload), [asSessionRecord(holder)]);
    assert.equal(
      annotations['kubectl.kubernetes.io/last-applied-configuration'],
      w.metadata?.annotations?.['kubectl.kubernetes.io/last-applied-configuration'],
    );
    const svc = plan.services[0] as V1Service;
    const record = JSON.parse(svc.metadata?.annotations?.[ANNOTATION_ORIGINAL] as string);
    assert.equal(record.workload, 'deployment/api');
    assert.deepEqual(record.ports, [{ port: 9090, protocol: 'TCP', targetPort: 'dbx-9090' }]);
    assert.equal(original.app.container, 'app');
    assert.deepEqual(Object.keys(original.app.fields), ['ports']);
    assert.equal(svc.metadata?.annotations?.[ANNOTATION_SESSION], undefined);
  });

  it('refuses a second session and names who holds it', () => {
    const { liveWorkload } = roundTrip(realisticDeployment(), services());
    assert.throws(
      () => planIntercept({ ...request(liveWorkload), holder: { ...holder, user: 'bob' } }),
      (err: unknown) =>
        isDevboxError(err, 'CONFLICT') &&
        err.message ===
          'deployment/api is already in use by alice@laptop since 2026-05-01T10:00:00Z (session s-3f2a)' &&
        /devbox down api/.test(err.hint ?? ''),
    );
    assert.ok(isSameHolder(sessionOf(liveWorkload) as SessionHolder, { user: 'alice', host: 'laptop' }));
    assert.ok(!isSameHolder(sessionOf(liveWorkload) as SessionHolder, { user: 'alice', host: 'ci' }));
  });

  it('refuses a leftover agent container or volume', () => {
    const w = realisticDeployment();
    w.spec?.template?.spec?.containers.push({ name: AGENT_CONTAINER });
    assert.throws(
      () => planIntercept(request(w)),
      (err: unknown) => isDevboxError(err, 'CONFLICT'),
    );
    const v = realisticDeployment();
    v.spec?.template?.spec?.volumes?.push({ name: 'devbox-agent-bundle', emptyDir: {} });
    assert.throws(
      () => planIntercept(request(v)),
      (err: unknown) => isDevboxError(err, 'CONFLICT'),
    );
  });

  it('leaves excluded Services alone and works without any Service', () => {
    const plan = planIntercept({ ...request(), excludeServices: ['api'] });
    assert.deepEqual(
      plan.services.map((s) => s.metadata?.name),
      ['api-internal'],
    );
    assert.deepEqual(plan.intercepts, [{ listenPort: 47002, appPort: 8080 }]);
    const none = planIntercept(request(realisticDeployment(), []));
    assert.deepEqual(none.intercepts, []);
    assert.deepEqual(none.services, []);
    const a = none.workload.spec?.template?.spec?.containers.at(-1);
    assert.equal(a?.ports, undefined);
    assert.deepEqual(a?.readinessProbe?.tcpSocket, { port: 47002 }, 'still probed, on its health port');
  });

  it('says how the pods will pick the agent up', () => {
    const paused = realisticDeployment();
    if (paused.kind === 'Deployment' && paused.spec) paused.spec.paused = true;
    assert.equal(planIntercept(request(paused)).rollout, 'paused');
    const zero = realisticDeployment();
    if (zero.spec) zero.spec.replicas = 0;
    assert.equal(planIntercept(request(zero)).rollout, 'no-replicas');
    const sts = statefulSet();
    sts.spec = { ...sts.spec, updateStrategy: { type: 'OnDelete' } } as never;
    const plan = planIntercept(request(sts));
    assert.equal(plan.rollout, 'delete-pods');
    assert.match(plan.warnings[0] as string, /OnDelete/);
  });
});

function statefulSet(): Workload {
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'db', namespace: 'shop', uid: 'u-db', resourceVersion: '7', generation: 1 },
    spec: {
      replicas: 3,
      serviceName: 'db',
      selector: { matchLabels: { app: 'db' } },
      template: {
        metadata: { labels: { app: 'db' } },
        spec: {
          containers: [
            {
              name: 'db',
              image: 'postgres:17',
              ports: [{ name: 'pg', containerPort: 5432, protocol: 'TCP' }],
              terminationMessagePath: '/dev/termination-log',
              imagePullPolicy: 'IfNotPresent',
            },
          ],
        },
      },
      updateStrategy: { type: 'RollingUpdate', rollingUpdate: { partition: 0 } },
      podManagementPolicy: 'OrderedReady',
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      ],
    },
  } as Workload;
}

describe('restore', () => {
  it('gives back the Deployment and its Services byte for byte', () => {
    const w = realisticDeployment();
    const svcs = services();
    const { restored, finalWorkload, finalServices } = roundTrip(w, svcs);
    assert.equal(restored.exact, true);
    assert.deepEqual(restored.drift, []);
    assert.equal(JSON.stringify(userFields(finalWorkload)), JSON.stringify(userFields(w)));
    assert.deepEqual(userFields(finalWorkload), userFields(w));
    svcs.forEach((s, i) => {
      assert.equal(
        JSON.stringify(userFields(finalServices[i] as V1Service)),
        JSON.stringify(userFields(s)),
        s.metadata?.name,
      );
    });
    // Named and numeric target ports come back with their types.
    assert.deepEqual(
      finalServices[0]?.spec?.ports?.map((p) => p.targetPort),
      ['http', 9090],
    );
    assert.deepEqual(
      finalServices[1]?.spec?.ports?.map((p) => p.targetPort),
      [8080],
    );
  });

  it('gives back a StatefulSet without volumes, and objects without annotations', () => {
    const sts = statefulSet();
    const svc = service('shop', 'db', '10.96.50.1', [{ name: 'pg', port: 5432, targetPort: 'pg' }], {
      app: 'db',
    });
    const { finalWorkload, finalServices, liveWorkload } = roundTrip(sts, [svc]);
    assert.deepEqual(
      liveWorkload.spec?.template?.spec?.volumes?.map((v) => v.name),
      ['devbox-agent-bundle'],
    );
    assert.equal(JSON.stringify(userFields(finalWorkload)), JSON.stringify(userFields(sts)));
    assert.equal(finalWorkload.metadata?.annotations, undefined);
    assert.equal(JSON.stringify(userFields(finalServices[0] as V1Service)), JSON.stringify(userFields(svc)));
    assert.equal(finalServices[0]?.metadata?.annotations, undefined);
  });

  it('keeps the current resourceVersion so the write is conditional', () => {
    const { liveWorkload, restored } = roundTrip(realisticDeployment(), services());
    assert.equal(restored.object.metadata?.resourceVersion, liveWorkload.metadata?.resourceVersion);
    assert.equal(restored.object.metadata?.uid, liveWorkload.metadata?.uid);
  });

  it('keeps changes others made during the session and reports them', () => {
    const { liveWorkload } = roundTrip(realisticDeployment(), services());
    const changed = structuredClone(liveWorkload);
    if (changed.spec) changed.spec.replicas = 5;
    const tmeta = changed.spec?.template?.metadata;
    if (tmeta)
      tmeta.annotations = {
        ...tmeta.annotations,
        'kubectl.kubernetes.io/restartedAt': '2026-05-01T11:00:00Z',
      };
    const r = restoreWorkload(changed);
    assert.ok(r);
    assert.equal(r.exact, false);
    assert.deepEqual(r.drift, [
      'spec.replicas',
      'spec.template.metadata.annotations["kubectl.kubernetes.io/restartedAt"]',
    ]);
    assert.equal(r.object.spec?.replicas, 5);
    assert.equal(
      r.object.spec?.template?.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt'],
      '2026-05-01T11:00:00Z',
    );
    assert.ok(!r.object.spec?.template?.spec?.containers.some((c) => c.name === AGENT_CONTAINER));
    assert.ok(!r.object.spec?.template?.spec?.volumes?.some((v) => v.name === 'devbox-agent-bundle'));
    assert.equal(r.object.metadata?.annotations?.[ANNOTATION_ORIGINAL], undefined);
    assert.equal(r.object.metadata?.annotations?.[ANNOTATION_SESSION], undefined);

    const forced = restoreWorkload(changed, { prefer: 'original' });
    assert.equal(forced?.exact, true);
    assert.deepEqual(forced?.object.spec, realisticDeployment().spec);
    assert.deepEqual(forced?.drift, r.drift);
  });

  it("keeps the app's ports when someone else changed them during the session, and reports it", () => {
    const w = realisticDeployment();
    const live = serverWrite(w, planIntercept(request(w)).workload);
    const app = live.spec?.template?.spec?.containers[0] as V1Container;
    app.ports = [...(app.ports ?? []), { name: 'admin', containerPort: 8081, protocol: 'TCP' }];
    const r = restoreWorkload(live);
    assert.equal(r?.exact, false);
    assert.ok(
      r?.drift.some((d) => d.includes('ports')),
      r?.drift.join(', '),
    );
    assert.equal(r?.object.spec?.template?.spec?.containers[0]?.ports?.at(-1)?.name, 'admin');
  });

  it('moves back only the Service ports still pointing at the agent', () => {
    const svcs = services();
    const plan = planIntercept(request(realisticDeployment(), svcs));
    const live = serverWrite(svcs[0] as V1Service, plan.services[0] as V1Service);
    const ports = live.spec?.ports ?? [];
    (ports[1] as { targetPort: number | string }).targetPort = 9191;
    const r = restoreService(live);
    assert.ok(r);
    assert.deepEqual(
      r.object.spec?.ports?.map((p) => p.targetPort),
      ['http', 9191],
    );
    assert.deepEqual(r.drift, ['spec.ports[1].targetPort']);
    assert.equal(r.exact, false);
  });

  it('treats a null the server omits as absent', () => {
    const w = realisticDeployment();
    const plan = planIntercept(request(w));
    const live = serverWrite(w, plan.workload);
    const tmeta = live.spec?.template?.metadata as Record<string, unknown>;
    tmeta.creationTimestamp = null;
    assert.equal(restoreWorkload(live)?.exact, true);
  });

  it('removes a leftover agent that has no record, and says it could not check the rest', () => {
    const w = realisticDeployment();
    const live = serverWrite(w, planIntercept(request(w)).workload);
    const annotations = { ...live.metadata?.annotations };
    delete annotations[ANNOTATION_ORIGINAL];
    delete annotations[ANNOTATION_SESSION];
    live.metadata = { ...live.metadata, annotations };
    const r = restoreWorkload(live);
    assert.equal(r?.exact, false);
    assert.deepEqual(r?.drift, ['no devbox.dev/original record: removed the agent only']);
    assert.deepEqual(r?.object.spec?.template?.spec?.containers, w.spec?.template?.spec?.containers);
    assert.deepEqual(r?.object.spec?.template?.spec?.volumes, w.spec?.template?.spec?.volumes);
  });

  it('removes a leftover agent whose env was edited, and says its port names stay with it', () => {
    const w = realisticDeployment();
    const live = serverWrite(w, planIntercept(request(w)).workload);
    live.metadata = { ...live.metadata, annotations: {} };
    const agent = live.spec?.template?.spec?.containers.find(
      (c) => c.name === AGENT_CONTAINER,
    ) as V1Container;
    agent.env = agent.env?.map((e) => (e.name === 'DEVBOX_INTERCEPT' ? { ...e, value: 'x:8080' } : e));
    const r = restoreWorkload(live);
    assert.equal(r?.exact, false);
    assert.equal(r?.drift.length, 2);
    assert.match(r?.drift[1] ?? '', /port names .* not given back: .*DEVBOX_INTERCEPT entry "x:8080"/);
    assert.ok(!r?.object.spec?.template?.spec?.containers.some((c) => c.name === AGENT_CONTAINER));
  });

  it('ignores objects devbox never touched and rejects an unreadable record', () => {
    assert.equal(restoreWorkload(realisticDeployment()), undefined);
    assert.equal(restoreService(services()[0] as V1Service), undefined);
    const broken = realisticDeployment();
    broken.metadata = { ...broken.metadata, annotations: { [ANNOTATION_ORIGINAL]: '{not json' } };
    assert.throws(
      () => restoreWorkload(broken),
      (err: unknown) => isDevboxError(err, 'CONFLICT'),
    );
    const sessionOnly = realisticDeployment();
    sessionOnly.metadata = {
      ...sessionOnly.metadata,
      annotations: { ...sessionOnly.metadata?.annotations, [ANNOTATION_SESSION]: JSON.stringify(holder) },
    };
    const r = restoreWorkload(sessionOnly);
    assert.deepEqual(r?.object.metadata?.annotations, realisticDeployment().metadata?.annotations);
  });
});
