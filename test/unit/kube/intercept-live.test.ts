import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Service } from '@kubernetes/client-node';
import { KubeApiError } from '../../../src/kube/api/errors.js';
import type { Kind, KubeClient } from '../../../src/kube/client.js';
import {
  ANNOTATION_ORIGINAL,
  ANNOTATION_SESSION,
  asSessionRecord,
  planIntercept,
} from '../../../src/kube/intercept.js';
import {
  agentObjectNames,
  findInterceptedWorkloads,
  findWorkload,
  restoreSession,
  writeServices,
  writeWorkload,
} from '../../../src/kube/intercept-live.js';
import type { Workload } from '../../../src/kube/workload.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { deployment, service } from './fixtures.js';

type Stored = { metadata?: { name?: string; namespace?: string; resourceVersion?: string } };

/** An in-memory API: get, list and a replace that enforces resourceVersion. */
class MemoryKube {
  private readonly objects = new Map<string, Stored>();
  private rv = 100;
  /** Runs once before the next replace of an object, as another client's write. */
  private readonly interference = new Map<string, (o: Stored) => void>();
  replaces = 0;

  private key(kind: Kind, ns: string, name: string) {
    return `${kind}/${ns}/${name}`;
  }

  put(kind: Kind, obj: Stored): void {
    const o = structuredClone(obj);
    o.metadata = { ...o.metadata, resourceVersion: String(++this.rv) };
    this.objects.set(this.key(kind, o.metadata.namespace ?? 'shop', o.metadata.name ?? ''), o);
  }

  interfere(kind: Kind, name: string, change: (o: Stored) => void): void {
    this.interference.set(this.key(kind, 'shop', name), change);
  }

  read<T>(kind: Kind, name: string): T {
    return structuredClone(this.objects.get(this.key(kind, 'shop', name))) as T;
  }

  asClient(): KubeClient {
    const self = this;
    return {
      namespace: 'shop',
      async get(kind: Kind, ns: string, name: string) {
        const o = self.objects.get(self.key(kind, ns, name));
        return o ? structuredClone(o) : undefined;
      },
      async list(kind: Kind, ns: string) {
        const items = [...self.objects.entries()]
          .filter(([k]) => k.startsWith(`${kind}/${ns}/`))
          .map(([, o]) => structuredClone(o));
        return { items, resourceVersion: String(self.rv) };
      },
      async replace(kind: Kind, obj: Stored) {
        self.replaces++;
        const key = self.key(kind, obj.metadata?.namespace ?? 'shop', obj.metadata?.name ?? '');
        const change = self.interference.get(key);
        if (change) {
          self.interference.delete(key);
          const current = self.objects.get(key) as Stored;
          change(current);
          self.put(kind, current);
        }
        const current = self.objects.get(key);
        if (current?.metadata?.resourceVersion !== obj.metadata?.resourceVersion) {
          throw new KubeApiError(
            409,
            'Conflict',
            `Operation cannot be fulfilled on ${key}: the object has been modified`,
          );
        }
        self.put(kind, obj);
        return structuredClone(self.objects.get(key));
      },
    } as unknown as KubeClient;
  }
}

const holder = { user: 'alice', host: 'laptop', startedAt: '2026-05-01T10:00:00Z', id: 's1' };
const agent = {
  image: 'node:22-slim',
  bundleConfigMap: 'b',
  bundleSha256: 'ab'.repeat(32),
  tokenSecret: 't',
};

function cluster() {
  const kube = new MemoryKube();
  const api = deployment('api', { app: 'api' }, [
    { name: 'app', ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }] },
  ]);
  kube.put('Deployment', api);
  kube.put('StatefulSet', {
    ...deployment('db', { app: 'db' }, [{ name: 'db' }]),
    kind: 'StatefulSet',
  } as Workload);
  kube.put(
    'Service',
    service('shop', 'api', '10.96.0.10', [{ port: 80, targetPort: 'http' }], { app: 'api' }),
  );
  kube.put(
    'Service',
    service('shop', 'api-direct', '10.96.0.11', [{ port: 8080, targetPort: 8080 }], { app: 'api' }),
  );
  kube.put('Service', service('shop', 'web', '10.96.0.12', [{ port: 80 }], { app: 'web' }));
  return kube;
}

async function intercept(kube: MemoryKube) {
  const client = kube.asClient();
  const w = await findWorkload(client, 'api', 'shop');
  const services = (await client.list('Service', 'shop')).items;
  const plan = planIntercept({ workload: w, services, container: 'app', agent, holder });
  await writeWorkload(client, plan.workload);
  await writeServices(client, plan.services);
  return plan;
}

function withoutRV<T extends Stored>(o: T): T {
  const c = structuredClone(o);
  delete c.metadata?.resourceVersion;
  return c;
}

describe('session', () => {
  it('finds workloads by name or kind/name and suggests near names', async () => {
    const client = cluster().asClient();
    assert.equal((await findWorkload(client, 'api', 'shop')).kind, 'Deployment');
    assert.equal((await findWorkload(client, 'sts/db', 'shop')).kind, 'StatefulSet');
    await assert.rejects(
      findWorkload(client, 'apo', 'shop'),
      (err: unknown) => isDevboxError(err, 'NOT_FOUND') && err.hint === 'did you mean deployment/api?',
    );
    await assert.rejects(
      findWorkload(client, 'deploy/db', 'shop'),
      (err: unknown) => isDevboxError(err, 'NOT_FOUND') && /deployment\/api/.test(err.hint ?? ''),
    );
  });

  it('undoes an intercept exactly: Services, then the workload', async () => {
    const kube = cluster();
    const before = {
      api: kube.read<Workload>('Deployment', 'api'),
      svc: kube.read<V1Service>('Service', 'api'),
      direct: kube.read<V1Service>('Service', 'api-direct'),
      web: kube.read<V1Service>('Service', 'web'),
    };
    await intercept(kube);
    // The named target resolves to the agent in new pods by itself; the numeric one now names it.
    assert.deepEqual(kube.read<V1Service>('Service', 'api'), before.svc);
    assert.equal(kube.read<V1Service>('Service', 'api-direct').spec?.ports?.[0]?.targetPort, 'http');
    assert.deepEqual(await findInterceptedWorkloads(kube.asClient(), 'shop'), [
      {
        kind: 'Deployment',
        name: 'api',
        holder: asSessionRecord(holder),
        sessions: [asSessionRecord(holder)],
      },
    ]);

    const reports = await restoreSession(kube.asClient(), 'shop', 'Deployment', 'api');
    assert.deepEqual(reports, [
      { object: 'service/api-direct', exact: true, drift: [] },
      { object: 'deployment/api', exact: true, drift: [] },
    ]);
    assert.deepEqual(withoutRV(kube.read<Workload>('Deployment', 'api')), withoutRV(before.api));
    assert.deepEqual(withoutRV(kube.read<V1Service>('Service', 'api')), withoutRV(before.svc));
    assert.deepEqual(withoutRV(kube.read<V1Service>('Service', 'api-direct')), withoutRV(before.direct));
    assert.deepEqual(kube.read<V1Service>('Service', 'web'), before.web, 'untouched');
    assert.deepEqual(await findInterceptedWorkloads(kube.asClient(), 'shop'), []);
    assert.deepEqual(
      await restoreSession(kube.asClient(), 'shop', 'Deployment', 'api'),
      [],
      'a second down has nothing to do',
    );
  });

  it('refuses a tampered record before writing anything, Services included', async () => {
    for (const tamper of [
      (a: Record<string, string>) => {
        const record = JSON.parse(a[ANNOTATION_ORIGINAL]!);
        record.agent.container = 'app';
        a[ANNOTATION_ORIGINAL] = JSON.stringify(record);
      },
      (a: Record<string, string>) => {
        a[ANNOTATION_SESSION] = 'null';
      },
    ]) {
      const kube = cluster();
      await intercept(kube);
      const w = kube.read<Workload>('Deployment', 'api');
      tamper(w.metadata!.annotations!);
      kube.put('Deployment', w);
      const replacesBefore = kube.replaces;
      await assert.rejects(
        restoreSession(kube.asClient(), 'shop', 'Deployment', 'api'),
        (err: unknown) => isDevboxError(err, 'CONFLICT') && /deployment\/api/.test(err.message),
      );
      await assert.rejects(findInterceptedWorkloads(kube.asClient(), 'shop'), /deployment\/api/);
      assert.equal(kube.replaces, replacesBefore, 'nothing written');
    }
  });

  it('applies only its own change again when a Service changed after it was read (regression: 409 unwound the session)', async () => {
    const kube = cluster();
    kube.interfere('Service', 'api-direct', (o) => {
      (o as V1Service).metadata!.annotations = { 'external-dns.alpha.kubernetes.io/hostname': 'api.example' };
    });
    await intercept(kube);
    const written = kube.read<V1Service>('Service', 'api-direct');
    assert.equal(written.spec?.ports?.[0]?.targetPort, 'http');
    assert.equal(written.metadata?.annotations?.['external-dns.alpha.kubernetes.io/hostname'], 'api.example');
    const reports = await restoreSession(kube.asClient(), 'shop', 'Deployment', 'api');
    assert.deepEqual(reports[0], { object: 'service/api-direct', exact: true, drift: [] });
    const restored = kube.read<V1Service>('Service', 'api-direct');
    assert.equal(restored.spec?.ports?.[0]?.targetPort, 8080);
    assert.deepEqual(restored.metadata?.annotations, {
      'external-dns.alpha.kubernetes.io/hostname': 'api.example',
    });
  });

  it('refuses to retarget a Service port someone else moved meanwhile', async () => {
    const kube = cluster();
    kube.interfere('Service', 'api-direct', (o) => {
      (o as V1Service).spec!.ports![0]!.targetPort = 9999;
    });
    await assert.rejects(
      intercept(kube),
      (err: unknown) => isDevboxError(err, 'CONFLICT') && /api-direct/.test(err.message),
    );
    assert.equal(kube.read<V1Service>('Service', 'api-direct').spec?.ports?.[0]?.targetPort, 9999);
  });

  it('recomputes on a conflicting write and keeps the other writer’s change', async () => {
    const kube = cluster();
    await intercept(kube);
    kube.interfere('Deployment', 'api', (o) => {
      (o as Workload).spec = { ...(o as Workload).spec, replicas: 4 } as never;
    });
    const replacesBefore = kube.replaces;
    const reports = await restoreSession(kube.asClient(), 'shop', 'Deployment', 'api');
    assert.deepEqual(reports.at(-1), { object: 'deployment/api', exact: false, drift: ['spec.replicas'] });
    const after = kube.read<Workload>('Deployment', 'api');
    assert.equal(after.spec?.replicas, 4);
    assert.equal(after.metadata?.annotations?.[ANNOTATION_ORIGINAL], undefined);
    assert.equal(after.spec?.template?.spec?.containers.length, 1);
    assert.equal(kube.replaces - replacesBefore, 1 + 2, 'one Service, then the workload twice');
  });

  it('restores Services that name the workload and removes the agent when the workload lost its record', async () => {
    const kube = cluster();
    const original = kube.read<Workload>('Deployment', 'api');
    await intercept(kube);
    const w = kube.read<Workload>('Deployment', 'api');
    kube.put('Deployment', {
      ...w,
      metadata: { ...w.metadata, annotations: { 'deployment.kubernetes.io/revision': '1' } },
    } as Workload);
    assert.deepEqual(await findInterceptedWorkloads(kube.asClient(), 'shop'), [
      { kind: 'Deployment', name: 'api', holder: undefined, sessions: [] },
    ]);
    const reports = await restoreSession(kube.asClient(), 'shop', 'Deployment', 'api');
    assert.deepEqual(reports, [
      { object: 'service/api-direct', exact: true, drift: [] },
      {
        object: 'deployment/api',
        exact: false,
        drift: ['no devbox.dev/original record: removed the agent only'],
      },
    ]);
    assert.equal(kube.read<V1Service>('Service', 'api').spec?.ports?.[0]?.targetPort, 'http');
    assert.deepEqual(withoutRV(kube.read<Workload>('Deployment', 'api')), withoutRV(original));
  });

  it('names the agent objects after the workload', () => {
    assert.deepEqual(agentObjectNames('Deployment', 'api'), {
      configMap: 'devbox-agent-deploy-api',
      secret: 'devbox-agent-deploy-api',
    });
    assert.equal(agentObjectNames('StatefulSet', 'db').secret, 'devbox-agent-sts-db');
  });
});
