import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closestNames, editDistance } from '../../../src/kube/suggest.js';
import {
  chooseWorkload,
  otherWorkloadsSelected,
  parseWorkloadRef,
  pickContainer,
  portsReachingContainer,
  resolveTargetPort,
  servicesSelecting,
  type Workload,
  workloadNotFound,
} from '../../../src/kube/workload.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { deployment, service } from './fixtures.js';

const api = deployment('api', { app: 'api', tier: 'backend' }, [
  { name: 'proxy', image: 'envoy', ports: [{ name: 'admin', containerPort: 15000, protocol: 'TCP' }] },
  {
    name: 'app',
    image: 'api:1',
    ports: [
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
      { name: 'dns', containerPort: 5353, protocol: 'UDP' },
    ],
  },
]);

describe('parseWorkloadRef', () => {
  it('reads names and kind/name with kubectl aliases, kinds case-insensitive', () => {
    assert.deepEqual(parseWorkloadRef('api'), { name: 'api' });
    assert.deepEqual(parseWorkloadRef(' api '), { name: 'api' });
    for (const k of [
      'deploy',
      'deployment',
      'Deployment',
      'DEPLOYMENTS',
      'deployment.apps',
      'deployments.v1.apps',
    ]) {
      assert.deepEqual(parseWorkloadRef(`${k}/api`), { kind: 'Deployment', name: 'api' }, k);
    }
    for (const k of ['sts', 'STS', 'statefulset', 'StatefulSet', 'statefulsets.apps']) {
      assert.deepEqual(parseWorkloadRef(`${k}/db`), { kind: 'StatefulSet', name: 'db' }, k);
    }
  });

  it('rejects other kinds and malformed input', () => {
    for (const bad of ['pod/api', 'daemonset/x', 'a/b/c', '/api', 'deploy/', '']) {
      assert.throws(
        () => parseWorkloadRef(bad),
        (err: unknown) => isDevboxError(err, 'BAD_INPUT'),
        bad,
      );
    }
  });
});

describe('candidates', () => {
  it('measures edit distance case-insensitively', () => {
    assert.equal(editDistance('kitten', 'sitting'), 3);
    assert.equal(editDistance('API', 'api'), 0);
    assert.equal(editDistance('', 'abc'), 3);
  });

  it('suggests the nearest names first', () => {
    const names = ['api', 'app', 'inventory', 'inventory-worker', 'postgres', 'web'];
    assert.deepEqual(closestNames('apo', names), ['api', 'app']);
    assert.deepEqual(closestNames('inventroy', names), ['inventory']);
    assert.deepEqual(closestNames('worker', names), ['inventory-worker']);
    assert.deepEqual(closestNames('zzzzzz', names), []);
  });

  it('says what is missing and what is near', () => {
    const available = [
      { kind: 'Deployment' as const, name: 'api' },
      { kind: 'StatefulSet' as const, name: 'apx' },
      { kind: 'Deployment' as const, name: 'web' },
    ];
    const err = workloadNotFound({ name: 'apo' }, 'shop', available);
    assert.equal(err.code, 'NOT_FOUND');
    assert.equal(err.message, 'deployment or statefulset "apo" not found in namespace "shop"');
    assert.equal(err.hint, 'did you mean deployment/api, statefulset/apx?');
    const kinded = workloadNotFound({ kind: 'StatefulSet', name: 'ap' }, 'shop', available);
    assert.equal(kinded.message, 'statefulset "ap" not found in namespace "shop"');
    assert.equal(kinded.hint, 'did you mean statefulset/apx?');
    assert.match(
      workloadNotFound({ name: 'zzzzzzzz' }, 'shop', available).hint ?? '',
      /workloads in namespace "shop": deployment\/api/,
    );
    assert.match(
      workloadNotFound({ name: 'x' }, 'empty', []).hint ?? '',
      /has no Deployments or StatefulSets/,
    );
  });

  it('chooses the named workload and refuses an ambiguous name', () => {
    const sts = { ...api, kind: 'StatefulSet' } as Workload;
    assert.equal(chooseWorkload({ name: 'api' }, 'shop', [api], []), api);
    assert.equal(chooseWorkload({ kind: 'StatefulSet', name: 'api' }, 'shop', [api, sts], []), sts);
    assert.throws(
      () => chooseWorkload({ name: 'api' }, 'shop', [api, sts], []),
      (err: unknown) => isDevboxError(err, 'BAD_INPUT') && /deploy\/api or sts\/api/.test(err.hint ?? ''),
    );
    assert.throws(
      () => chooseWorkload({ name: 'nope' }, 'shop', [], []),
      (err: unknown) => isDevboxError(err, 'NOT_FOUND'),
    );
  });
});

describe('Services and ports', () => {
  const svcHttp = service('shop', 'api', '10.96.0.10', [{ port: 80, name: 'http', targetPort: 'http' }], {
    app: 'api',
  });
  const svcNumeric = service(
    'shop',
    'api-direct',
    '10.96.0.11',
    [
      { port: 8080, targetPort: 8080 },
      { port: 9090, targetPort: 9090 },
    ],
    { app: 'api', tier: 'backend' },
  );
  const svcDns = service(
    'shop',
    'api-dns',
    '10.96.0.12',
    [{ port: 53, name: 'dns', protocol: 'UDP', targetPort: 'dns' }],
    { app: 'api' },
  );
  const svcProxy = service('shop', 'api-admin', '10.96.0.13', [{ port: 15000, targetPort: 'admin' }], {
    app: 'api',
  });
  const svcOther = service('shop', 'web', '10.96.0.14', [{ port: 80 }], { app: 'web' });
  const svcNoSelector = service('shop', 'manual', '10.96.0.15', [{ port: 80 }]);
  const all = [svcOther, svcProxy, svcNumeric, svcHttp, svcDns, svcNoSelector];

  it('finds the Services whose selector matches the pod template labels', () => {
    assert.deepEqual(
      servicesSelecting(api, all).map((s) => s.metadata?.name),
      ['api', 'api-admin', 'api-direct', 'api-dns'],
    );
    const external = { ...svcHttp, spec: { ...svcHttp.spec, type: 'ExternalName' } };
    assert.deepEqual(servicesSelecting(api, [external]), []);
  });

  it('resolves named ports by name and protocol, numeric ports as they are', () => {
    const template = api.spec?.template ?? {};
    assert.deepEqual(resolveTargetPort(template, { port: 80, protocol: 'TCP', targetPort: 'http' }), {
      container: 'app',
      containerPort: 8080,
    });
    assert.equal(resolveTargetPort(template, { port: 80, protocol: 'UDP', targetPort: 'http' }), undefined);
    assert.equal(resolveTargetPort(template, { port: 80, protocol: 'TCP', targetPort: 'nope' }), undefined);
    assert.deepEqual(resolveTargetPort(template, { port: 1, protocol: 'TCP', targetPort: 15000 }), {
      container: 'proxy',
      containerPort: 15000,
    });
    assert.deepEqual(resolveTargetPort(template, { port: 1, protocol: 'TCP', targetPort: 9090 }), {
      container: undefined,
      containerPort: 9090,
    });
    assert.deepEqual(resolveTargetPort(template, { port: 7000, protocol: 'TCP' }), {
      container: undefined,
      containerPort: 7000,
    });
  });

  it('resolves named ports of sidecar init containers, not of plain init containers', () => {
    const template = {
      spec: {
        containers: [{ name: 'app' }],
        initContainers: [
          { name: 'init', ports: [{ name: 'x', containerPort: 1 }] },
          { name: 'sidecar', restartPolicy: 'Always', ports: [{ name: 'y', containerPort: 2 }] },
        ],
      },
    };
    assert.equal(resolveTargetPort(template, { port: 1, protocol: 'TCP', targetPort: 'x' }), undefined);
    assert.deepEqual(resolveTargetPort(template, { port: 1, protocol: 'TCP', targetPort: 'y' }), {
      container: 'sidecar',
      containerPort: 2,
    });
  });

  it('picks -c, else the container a Service targets, else the first', () => {
    assert.equal(
      pickContainer(api, all).name,
      'app',
      'api-admin targets proxy, but api (first by name) targets app',
    );
    assert.equal(pickContainer(api, [svcProxy]).name, 'proxy');
    assert.equal(pickContainer(api, []).name, 'proxy');
    assert.equal(pickContainer(api, all, 'proxy').name, 'proxy');
    assert.throws(
      () => pickContainer(api, all, 'nope'),
      (err: unknown) => isDevboxError(err, 'NOT_FOUND') && err.hint === 'containers: proxy, app',
    );
    const withAgent = deployment('x', { a: 'b' }, [{ name: 'devbox-agent' }, { name: 'main' }]);
    assert.equal(pickContainer(withAgent, []).name, 'main');
  });

  it('lists the Service ports that reach the container', () => {
    const ports = portsReachingContainer(api, all, 'app').map(
      (t) => `${t.service}:${t.servicePort.port}/${t.servicePort.protocol}->${t.containerPort}`,
    );
    assert.deepEqual(ports, [
      'api:80/TCP->8080',
      'api-direct:8080/TCP->8080',
      'api-direct:9090/TCP->9090',
      'api-dns:53/UDP->5353',
    ]);
  });

  it('notices Services shared with other workloads', () => {
    const web = deployment('web', { app: 'web' }, [{ name: 'web' }]);
    const apiCanary = deployment('api-canary', { app: 'api', track: 'canary' }, [{ name: 'app' }]);
    assert.deepEqual(otherWorkloadsSelected(svcHttp, api, [api, web, apiCanary]), ['deployment/api-canary']);
    assert.deepEqual(otherWorkloadsSelected(svcNumeric, api, [api, web, apiCanary]), []);
  });
});
