import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { V1Container, V1EnvFromSource, V1EnvVar, V1Pod, V1PodSpec } from '@kubernetes/client-node';
import {
  envFromKeyRuleFor,
  type ResolvedEnvVar,
  type ResolveEnvInput,
  resolveEnv,
} from '../../../src/kube/env/resolve.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { type FakeCluster, fakeLookup, service } from './fixtures.js';

const NS = 'shop';

function livePod(container: Partial<V1Container>, spec: Partial<V1PodSpec> = {}): V1Pod {
  return {
    metadata: {
      name: 'api-7d9f-abcde',
      namespace: NS,
      uid: '1f2e3d4c-0000-4000-8000-000000000001',
      labels: { app: 'api', 'pod-template-hash': '7d9f', tier: 'backend' },
      annotations: { 'example.com/owner': 'team-a', note: 'say "hi"\nbye' },
    },
    spec: {
      containers: [{ name: 'app', image: 'app:1', ...container }],
      nodeName: 'node-1',
      serviceAccountName: 'api-sa',
      enableServiceLinks: true,
      ...spec,
    },
    status: {
      podIP: '10.244.1.7',
      podIPs: [{ ip: '10.244.1.7' }, { ip: 'fd00:10:244:1::7' }],
      hostIP: '172.18.0.2',
      hostIPs: [{ ip: '172.18.0.2' }, { ip: 'fc00:f853:ccd:e793::2' }],
    },
  };
}

/**
 * Resolves `env`/`envFrom` of a one-container live pod against `cluster`, without
 * service links, and leaves the always-present KUBERNETES_* variables out of the result.
 */
async function resolve(
  env: V1EnvVar[],
  cluster: FakeCluster = {},
  extra: {
    envFrom?: V1EnvFromSource[];
    input?: Partial<ResolveEnvInput>;
    container?: Partial<V1Container>;
  } = {},
) {
  const pod = livePod({ env, envFrom: extra.envFrom, ...extra.container }, { enableServiceLinks: false });
  const result = await resolveEnv({ pod, container: 'app', ...extra.input }, fakeLookup(cluster));
  return { ...result, vars: result.vars.filter((v) => v.source !== 'service') };
}

/** name → value, without the service-link variables. */
function values(vars: ResolvedEnvVar[]): Record<string, string> {
  return Object.fromEntries(vars.filter((v) => v.source !== 'service').map((v) => [v.name, v.value]));
}

async function rejectsWith(p: Promise<unknown>, code: string, message: string) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isDevboxError(err), `not a DevboxError: ${err}`);
    assert.equal(err.code, code);
    assert.equal(err.message, message);
    return true;
  });
}

describe('resolveEnv: value and expansion', () => {
  it('keeps plain values, including an empty one, in declaration order', async () => {
    const { vars } = await resolve([
      { name: 'B', value: '2' },
      { name: 'A', value: '1' },
      { name: 'EMPTY', value: '' },
      { name: 'NOTHING' },
    ]);
    assert.deepEqual(
      vars.map((v) => [v.name, v.value, v.secret, v.source]),
      [
        ['B', '2', false, 'value'],
        ['A', '1', false, 'value'],
        ['EMPTY', '', false, 'value'],
        ['NOTHING', '', false, 'value'],
      ],
    );
  });

  it('expands $(A) against earlier variables only, keeps $$ escapes and unknown names', async () => {
    const { vars } = await resolve([
      { name: 'A', value: 'alpha' },
      { name: 'REF', value: 'x-$(A)-y' },
      { name: 'ESCAPED', value: '$$(A)' },
      { name: 'MISSING', value: '$(NOPE)/$(A)' },
      { name: 'FORWARD', value: '$(LATER)' },
      { name: 'LATER', value: 'late' },
      { name: 'NESTED', value: '$(REF)+$(ESCAPED)' },
    ]);
    assert.deepEqual(values(vars), {
      A: 'alpha',
      REF: 'x-alpha-y',
      ESCAPED: '$(A)',
      MISSING: '$(NOPE)/alpha',
      FORWARD: '$(LATER)',
      LATER: 'late',
      // References are not expanded again: ESCAPED's value "$(A)" stays as is.
      NESTED: 'x-alpha-y+$(A)',
    });
  });

  it('lets a variable refer to its own earlier value and redefine it', async () => {
    const { vars } = await resolve([
      { name: 'PATH_EXTRA', value: '/a' },
      { name: 'PATH_EXTRA', value: '$(PATH_EXTRA):/b' },
    ]);
    assert.deepEqual(values(vars), { PATH_EXTRA: '/a:/b' });
    assert.equal(vars.length, 1);
  });

  it('sees envFrom keys in expansions, even ones declared again later', async () => {
    const { vars } = await resolve(
      [
        { name: 'URL', value: 'http://$(HOST):$(PORT)' },
        { name: 'PORT', value: '9090' },
      ],
      { configMaps: { cfg: { HOST: 'db', PORT: '5432' } } },
      { envFrom: [{ configMapRef: { name: 'cfg' } }] },
    );
    assert.deepEqual(values(vars), { HOST: 'db', PORT: '9090', URL: 'http://db:5432' });
    // PORT keeps the position envFrom gave it, with the later value.
    assert.deepEqual(
      vars.map((v) => v.name),
      ['HOST', 'PORT', 'URL'],
    );
  });

  it('marks values that pull a secret in through $(...) as secret', async () => {
    const { vars } = await resolve(
      [
        { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'db', key: 'password' } } },
        { name: 'DSN', value: 'postgres://app:$(PASSWORD)@db/app' },
        { name: 'PLAIN', value: '$$(PASSWORD)' },
      ],
      { secrets: { db: { password: 's3cr=t' } } },
    );
    const byName = Object.fromEntries(vars.map((v) => [v.name, v]));
    assert.equal(byName.DSN?.value, 'postgres://app:s3cr=t@db/app');
    assert.equal(byName.DSN?.secret, true);
    assert.equal(byName.PLAIN?.value, '$(PASSWORD)');
    assert.equal(byName.PLAIN?.secret, false);
  });
});

describe('resolveEnv: configMapKeyRef and secretKeyRef', () => {
  it('reads keys, decodes secrets and marks them secret', async () => {
    const { vars } = await resolve(
      [
        { name: 'LEVEL', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'log.level' } } },
        { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 'creds', key: 'token' } } },
        { name: 'UNICODE', valueFrom: { secretKeyRef: { name: 'creds', key: 'greeting' } } },
      ],
      {
        configMaps: { cfg: { 'log.level': 'debug' } },
        secrets: { creds: { token: 'abc\n', greeting: 'grüße' } },
      },
    );
    assert.deepEqual(
      vars.map((v) => [v.name, v.value, v.secret, v.source]),
      [
        ['LEVEL', 'debug', false, 'configMap'],
        ['TOKEN', 'abc\n', true, 'secret'],
        ['UNICODE', 'grüße', true, 'secret'],
      ],
    );
  });

  it('fails like the kubelet on a missing ConfigMap, Secret or key', async () => {
    await rejectsWith(
      resolve([{ name: 'X', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k' } } }]),
      'NOT_FOUND',
      'configmap "nope" not found',
    );
    await rejectsWith(
      resolve([{ name: 'X', valueFrom: { secretKeyRef: { name: 'nope', key: 'k' } } }]),
      'NOT_FOUND',
      'secret "nope" not found',
    );
    await rejectsWith(
      resolve([{ name: 'X', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'k' } } }], {
        configMaps: { cfg: { other: '1' } },
      }),
      'NOT_FOUND',
      "couldn't find key k in ConfigMap shop/cfg",
    );
    await rejectsWith(
      resolve([{ name: 'X', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }], {
        secrets: { s: { other: '1' } },
      }),
      'NOT_FOUND',
      "couldn't find key k in Secret shop/s",
    );
  });

  it('skips optional references to missing objects and keys, leaving earlier values alone', async () => {
    const { vars } = await resolve(
      [
        { name: 'A', valueFrom: { configMapKeyRef: { name: 'nope', key: 'k', optional: true } } },
        { name: 'B', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'missing', optional: true } } },
        { name: 'C', valueFrom: { secretKeyRef: { name: 'nope', key: 'k', optional: true } } },
        { name: 'D', valueFrom: { secretKeyRef: { name: 's', key: 'missing', optional: true } } },
        { name: 'KEEP', valueFrom: { configMapKeyRef: { name: 'nope', key: 'KEEP', optional: true } } },
      ],
      { configMaps: { cfg: { x: '1' }, base: { KEEP: 'from-envFrom' } }, secrets: { s: { y: '2' } } },
      { envFrom: [{ configMapRef: { name: 'base' } }] },
    );
    assert.deepEqual(values(vars), { KEEP: 'from-envFrom' });
  });

  it('reads each ConfigMap and Secret once per container', async () => {
    const lookup = fakeLookup({
      master: null,
      configMaps: { cfg: { a: '1', b: '2' } },
      secrets: { s: { c: '3' } },
    });
    const pod = livePod(
      {
        envFrom: [{ configMapRef: { name: 'cfg' } }, { secretRef: { name: 's' } }],
        env: [
          { name: 'A', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'a' } } },
          { name: 'B', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'b' } } },
          { name: 'C', valueFrom: { secretKeyRef: { name: 's', key: 'c' } } },
        ],
      },
      { enableServiceLinks: false },
    );
    await resolveEnv({ pod, container: 'app' }, lookup);
    assert.deepEqual(lookup.reads, ['configmap/shop/cfg', 'secret/shop/s']);
  });
});

describe('resolveEnv: envFrom', () => {
  it('prefixes keys, lets later sources and env entries win, and marks secret keys', async () => {
    const { vars } = await resolve(
      [{ name: 'APP_MODE', value: 'explicit' }],
      {
        configMaps: { one: { MODE: 'one', ONLY_ONE: '1' }, two: { MODE: 'two' } },
        secrets: { s: { KEY: 'k' } },
      },
      {
        envFrom: [
          { configMapRef: { name: 'one' }, prefix: 'APP_' },
          { configMapRef: { name: 'two' }, prefix: 'APP_' },
          { secretRef: { name: 's' }, prefix: 'S_' },
          { configMapRef: { name: 'missing', optional: true } },
          { secretRef: { name: 'missing', optional: true } },
        ],
      },
    );
    assert.deepEqual(
      vars.map((v) => [v.name, v.value, v.secret]),
      [
        ['APP_MODE', 'explicit', false],
        ['APP_ONLY_ONE', '1', false],
        ['S_KEY', 'k', true],
      ],
    );
  });

  it('fails on a missing non-optional source', async () => {
    await rejectsWith(
      resolve([], {}, { envFrom: [{ secretRef: { name: 'gone' } }] }),
      'NOT_FOUND',
      'secret "gone" not found',
    );
  });

  it('keeps every key on current kubelets and skips invalid names on old ones, like the kubelet event', async () => {
    const cluster = {
      configMaps: { cfg: { '1badkey': 'x', 'dotted.key': 'y', 'with-dash': 'z', GOOD: 'g' } },
    };
    const envFrom = [{ configMapRef: { name: 'cfg' } }];
    const relaxed = await resolve([], cluster, { envFrom });
    assert.deepEqual(values(relaxed.vars), {
      '1badkey': 'x',
      'dotted.key': 'y',
      'with-dash': 'z',
      GOOD: 'g',
    });
    assert.deepEqual(relaxed.warnings, []);

    const strict = await resolve([], cluster, { envFrom, input: { envFromKeys: 'strict' } });
    assert.deepEqual(values(strict.vars), { 'dotted.key': 'y', 'with-dash': 'z', GOOD: 'g' });
    assert.deepEqual(strict.warnings, [
      'Keys [1badkey] from the EnvFrom configMap shop/cfg were skipped since they are considered invalid environment variable names.',
    ]);

    const prefixed = await resolve([], cluster, {
      envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'P_' }],
      input: { envFromKeys: 'strict' },
    });
    assert.ok('P_1badkey' in values(prefixed.vars), 'a prefix can make a key valid');
  });

  it('picks the rule from the kubelet version', () => {
    assert.equal(envFromKeyRuleFor('v1.35.4'), 'relaxed');
    assert.equal(envFromKeyRuleFor('v1.32.0'), 'relaxed');
    assert.equal(envFromKeyRuleFor('v1.31.9-eks-1234'), 'strict');
    assert.equal(envFromKeyRuleFor('1.29'), 'strict');
    assert.equal(envFromKeyRuleFor('garbage'), 'relaxed');
  });
});

describe('resolveEnv: fieldRef', () => {
  const field = (name: string, fieldPath: string): V1EnvVar => ({
    name,
    valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } },
  });

  it('reads every field the API allows for env', async () => {
    const { vars } = await resolve([
      field('NAME', 'metadata.name'),
      field('NAMESPACE', 'metadata.namespace'),
      field('UID', 'metadata.uid'),
      field('APP', "metadata.labels['app']"),
      field('NO_LABEL', "metadata.labels['missing']"),
      field('OWNER', "metadata.annotations['example.com/owner']"),
      field('POD_IP', 'status.podIP'),
      field('POD_IPS', 'status.podIPs'),
      field('HOST_IP', 'status.hostIP'),
      field('HOST_IPS', 'status.hostIPs'),
      field('NODE', 'spec.nodeName'),
      field('NODE_OLD', 'spec.host'),
      field('SA', 'spec.serviceAccountName'),
      { name: 'NO_VERSION', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    ]);
    assert.deepEqual(values(vars), {
      NAME: 'api-7d9f-abcde',
      NAMESPACE: 'shop',
      UID: '1f2e3d4c-0000-4000-8000-000000000001',
      APP: 'api',
      NO_LABEL: '',
      OWNER: 'team-a',
      POD_IP: '10.244.1.7',
      POD_IPS: '10.244.1.7,fd00:10:244:1::7',
      HOST_IP: '172.18.0.2',
      HOST_IPS: '172.18.0.2,fc00:f853:ccd:e793::2',
      NODE: 'node-1',
      NODE_OLD: 'node-1',
      SA: 'api-sa',
      NO_VERSION: 'api-7d9f-abcde',
    });
    assert.ok(vars.every((v) => v.source === 'field' && !v.secret));
  });

  it('formats whole label and annotation maps as sorted key="quoted" lines', async () => {
    const { vars } = await resolve([
      field('LABELS', 'metadata.labels'),
      field('ANNOTATIONS', 'metadata.annotations'),
    ]);
    assert.deepEqual(values(vars), {
      LABELS: 'app="api"\npod-template-hash="7d9f"\ntier="backend"',
      ANNOTATIONS: 'example.com/owner="team-a"\nnote="say \\"hi\\"\\nbye"',
    });
  });

  it('falls back to podIP and hostIP when the plural fields are absent', async () => {
    const pod = livePod(
      { env: [field('IPS', 'status.podIPs'), field('HOSTS', 'status.hostIPs')] },
      { enableServiceLinks: false },
    );
    pod.status = { podIP: '10.0.0.9', hostIP: '192.168.1.2' };
    const { vars } = await resolveEnv({ pod, container: 'app' }, fakeLookup({ master: null }));
    assert.deepEqual(values(vars), { IPS: '10.0.0.9', HOSTS: '192.168.1.2' });
  });

  it('rejects unsupported paths with the kubelet wording', async () => {
    await rejectsWith(
      resolve([field('X', 'spec.restartPolicy')]),
      'BAD_INPUT',
      'unsupported fieldPath: spec.restartPolicy',
    );
    await rejectsWith(
      resolve([field('X', "spec['x']")]),
      'BAD_INPUT',
      "field label does not support subscript: spec['x']",
    );
    await rejectsWith(
      resolve([{ name: 'X', valueFrom: { fieldRef: { apiVersion: 'v2', fieldPath: 'metadata.name' } } }]),
      'BAD_INPUT',
      'unsupported pod version: v2',
    );
  });

  it('takes pod fields from a live pod when given a template', async () => {
    const template = {
      metadata: { labels: { app: 'api' } },
      spec: {
        enableServiceLinks: false,
        containers: [
          {
            name: 'app',
            env: [
              field('NAME', 'metadata.name'),
              field('NS', 'metadata.namespace'),
              field('APP', "metadata.labels['app']"),
            ],
          },
        ],
      },
    };
    const live = livePod({});
    const { vars } = await resolveEnv(
      { pod: template, livePod: live, container: 'app', namespace: NS },
      fakeLookup({ master: null }),
    );
    assert.deepEqual(values(vars), { NAME: 'api-7d9f-abcde', NS: 'shop', APP: 'api' });
  });

  it('needs a running pod for fields only a pod has, not for namespace or labels', async () => {
    const template = {
      metadata: { labels: { app: 'api' } },
      spec: {
        enableServiceLinks: false,
        containers: [
          { name: 'app', env: [field('NS', 'metadata.namespace'), field('APP', "metadata.labels['app']")] },
        ],
      },
    };
    const { vars } = await resolveEnv(
      { pod: template, container: 'app', namespace: NS },
      fakeLookup({ master: null }),
    );
    assert.deepEqual(values(vars), { NS: 'shop', APP: 'api' });
    const needsPod = {
      ...template,
      spec: { ...template.spec, containers: [{ name: 'app', env: [field('IP', 'status.podIP')] }] },
    };
    await rejectsWith(
      resolveEnv({ pod: needsPod, container: 'app', namespace: NS }, fakeLookup({ master: null })),
      'BAD_INPUT',
      'env IP reads status.podIP, which needs a running pod',
    );
  });
});

describe('resolveEnv: resourceFieldRef', () => {
  const res = (name: string, resource: string, divisor?: string, containerName?: string): V1EnvVar => ({
    name,
    valueFrom: { resourceFieldRef: { resource, divisor, containerName } },
  });

  it('divides by the divisor and rounds up, cpu in millicores', async () => {
    const { vars } = await resolve(
      [
        res('CPU_LIMIT', 'limits.cpu'),
        res('CPU_LIMIT_M', 'limits.cpu', '1m'),
        res('CPU_REQ_M', 'requests.cpu', '1m'),
        res('CPU_REQ', 'requests.cpu', '0'),
        res('MEM_LIMIT', 'limits.memory'),
        res('MEM_LIMIT_MI', 'limits.memory', '1Mi'),
        res('MEM_LIMIT_GI', 'limits.memory', '1Gi'),
        res('MEM_REQ_K', 'requests.memory', '1k'),
        res('EPH_REQ', 'requests.ephemeral-storage', '1M'),
      ],
      {},
      {
        container: {
          resources: {
            limits: { cpu: '1500m', memory: '1536Mi', 'ephemeral-storage': '2Gi' },
            requests: { cpu: '250m', memory: '1000', 'ephemeral-storage': '1500k' },
          },
        },
        input: { nodeAllocatable: { cpu: '8', memory: '32Gi', 'ephemeral-storage': '100Gi' } },
      },
    );
    assert.deepEqual(values(vars), {
      CPU_LIMIT: '2',
      CPU_LIMIT_M: '1500',
      CPU_REQ_M: '250',
      CPU_REQ: '1',
      MEM_LIMIT: String(1536 * 1024 * 1024),
      MEM_LIMIT_MI: '1536',
      MEM_LIMIT_GI: '2',
      MEM_REQ_K: '1',
      EPH_REQ: '2',
    });
  });

  it('takes unset limits from node allocatable and unset requests from limits, else 0', async () => {
    const { vars } = await resolve(
      [
        res('CPU', 'limits.cpu', '1m'),
        res('MEM', 'limits.memory', '1Mi'),
        res('EPH', 'limits.ephemeral-storage', '1Gi'),
        res('REQ_CPU', 'requests.cpu', '1m'),
        res('REQ_MEM', 'requests.memory'),
      ],
      {},
      {
        container: { resources: { limits: { cpu: '0' } } },
        input: { nodeAllocatable: { cpu: '3900m', memory: '7Gi', 'ephemeral-storage': '50Gi' } },
      },
    );
    // A zero limit counts as unset, and the pod's request defaults to that zero limit.
    assert.deepEqual(values(vars), {
      CPU: '3900',
      MEM: String(7 * 1024),
      EPH: '50',
      REQ_CPU: '0',
      REQ_MEM: '0',
    });

    const withRequestFromLimit = await resolve(
      [res('REQ', 'requests.memory', '1Mi')],
      {},
      { container: { resources: { limits: { memory: '64Mi' } } } },
    );
    assert.deepEqual(values(withRequestFromLimit.vars), { REQ: '64' });
  });

  it('prefers pod-level limits for cpu and memory over allocatable', async () => {
    const pod = livePod(
      {
        env: [
          res('CPU', 'limits.cpu', '1m'),
          res('MEM', 'limits.memory', '1Mi'),
          res('EPH', 'limits.ephemeral-storage', '1Gi'),
        ],
      },
      {
        enableServiceLinks: false,
        resources: { limits: { cpu: '2', memory: '1Gi', 'ephemeral-storage': '1Gi' } },
      },
    );
    const { vars } = await resolveEnv(
      { pod, container: 'app', nodeAllocatable: { cpu: '8', memory: '32Gi', 'ephemeral-storage': '100Gi' } },
      fakeLookup({ master: null }),
    );
    assert.deepEqual(values(vars), { CPU: '2000', MEM: '1024', EPH: '100' });
  });

  it('reads another container with containerName', async () => {
    const pod = livePod(
      { env: [res('SIDE', 'limits.memory', '1Mi', 'side')] },
      { enableServiceLinks: false },
    );
    pod.spec?.containers.push({ name: 'side', resources: { limits: { memory: '128Mi' } } });
    const { vars } = await resolveEnv({ pod, container: 'app' }, fakeLookup({ master: null }));
    assert.deepEqual(values(vars), { SIDE: '128' });
  });

  it('leaves out a limit it cannot know and says why', async () => {
    const { vars, warnings } = await resolve(
      [res('CPU', 'limits.cpu'), res('REQ', 'requests.cpu', '1m')],
      {},
      { container: { resources: { requests: { cpu: '100m' } } } },
    );
    assert.deepEqual(values(vars), { REQ: '100' });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] as string, /env CPU: container app sets no cpu limit/);
  });

  it('rejects unsupported resources', async () => {
    await rejectsWith(
      resolve([res('X', 'limits.gpu')]),
      'BAD_INPUT',
      'unsupported container resource : limits.gpu',
    );
  });
});

describe('resolveEnv: service links', () => {
  const services = [
    service(NS, 'inventory', '10.96.12.34', [
      { port: 80, name: 'http', targetPort: 8080 },
      { port: 9090, name: 'metrics-port', targetPort: 'metrics' },
    ]),
    service(NS, 'dns-cache', '10.96.0.53', [{ port: 53, name: 'dns', protocol: 'UDP' }]),
    service(NS, 'plain', '10.96.7.7', [{ port: 5432 }]),
    service(NS, 'headless', 'None', [{ port: 80 }]),
    {
      ...service(NS, 'external', '', [{ port: 443 }]),
      spec: { type: 'ExternalName', externalName: 'example.com' },
    },
    service(NS, 'v6', 'fd00:10:96::1', [{ port: 8443 }]),
    service('other', 'elsewhere', '10.96.9.9', [{ port: 80 }]),
  ];

  async function linked(
    enableServiceLinks: boolean | undefined,
    env: V1EnvVar[] = [],
    master?: FakeCluster['master'],
  ) {
    const pod = livePod({ env }, { enableServiceLinks });
    return resolveEnv({ pod, container: 'app' }, fakeLookup({ services, master }));
  }

  it('adds docker-link variables for every port of every ClusterIP Service, TCP and UDP', async () => {
    const { vars } = await linked(undefined);
    const env = Object.fromEntries(vars.map((v) => [v.name, v.value]));
    assert.equal(env.INVENTORY_SERVICE_HOST, '10.96.12.34');
    assert.equal(env.INVENTORY_SERVICE_PORT, '80');
    assert.equal(env.INVENTORY_SERVICE_PORT_HTTP, '80');
    assert.equal(env.INVENTORY_SERVICE_PORT_METRICS_PORT, '9090');
    assert.equal(env.INVENTORY_PORT, 'tcp://10.96.12.34:80');
    assert.equal(env.INVENTORY_PORT_80_TCP, 'tcp://10.96.12.34:80');
    assert.equal(env.INVENTORY_PORT_80_TCP_PROTO, 'tcp');
    assert.equal(env.INVENTORY_PORT_80_TCP_PORT, '80');
    assert.equal(env.INVENTORY_PORT_80_TCP_ADDR, '10.96.12.34');
    assert.equal(env.INVENTORY_PORT_9090_TCP, 'tcp://10.96.12.34:9090');
    assert.equal(env.DNS_CACHE_SERVICE_HOST, '10.96.0.53');
    assert.equal(env.DNS_CACHE_PORT, 'udp://10.96.0.53:53');
    assert.equal(env.DNS_CACHE_PORT_53_UDP, 'udp://10.96.0.53:53');
    assert.equal(env.DNS_CACHE_PORT_53_UDP_PROTO, 'udp');
    assert.equal(env.PLAIN_SERVICE_PORT, '5432');
    assert.equal(env.V6_SERVICE_HOST, 'fd00:10:96::1');
    assert.equal(env.V6_PORT, 'tcp://[fd00:10:96::1]:8443');
    assert.equal(env.V6_PORT_8443_TCP_ADDR, 'fd00:10:96::1');
    assert.equal(env.KUBERNETES_SERVICE_HOST, '10.96.0.1');
    assert.equal(env.KUBERNETES_SERVICE_PORT, '443');
    assert.equal(env.KUBERNETES_SERVICE_PORT_HTTPS, '443');
    assert.equal(env.KUBERNETES_PORT, 'tcp://10.96.0.1:443');
    assert.equal(env.KUBERNETES_PORT_443_TCP, 'tcp://10.96.0.1:443');
    for (const name of Object.keys(env)) assert.doesNotMatch(name, /^(HEADLESS|EXTERNAL|ELSEWHERE)_/);
    // Exactly the kubelet's set: 5 per port plus host, port and named ports per Service.
    const count = (prefix: string) => vars.filter((v) => v.name.startsWith(prefix)).length;
    assert.equal(count('INVENTORY_'), 2 + 2 + 1 + 4 * 2);
    assert.equal(count('KUBERNETES_'), 2 + 1 + 1 + 4);
    assert.ok(vars.every((v) => v.source === 'service' && !v.secret));
  });

  it('gives only the KUBERNETES_ variables when enableServiceLinks is false', async () => {
    const { vars } = await linked(false);
    assert.ok(vars.length > 0);
    assert.ok(
      vars.every((v) => v.name.startsWith('KUBERNETES_')),
      vars.map((v) => v.name).join(),
    );
  });

  it('puts service variables after the container env and lets the container env win', async () => {
    const { vars } = await linked(true, [
      { name: 'INVENTORY_SERVICE_HOST', value: 'override' },
      { name: 'TARGET', value: '$(INVENTORY_SERVICE_HOST):$(INVENTORY_SERVICE_PORT)' },
    ]);
    assert.deepEqual(
      vars.slice(0, 2).map((v) => [v.name, v.value]),
      [
        ['INVENTORY_SERVICE_HOST', 'override'],
        ['TARGET', 'override:80'],
      ],
    );
    assert.equal(vars.filter((v) => v.name === 'INVENTORY_SERVICE_HOST').length, 1);
  });

  it('expands references to KUBERNETES_ variables even without service links', async () => {
    const { vars } = await linked(false, [
      { name: 'API', value: 'https://$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)' },
    ]);
    assert.equal(vars[0]?.value, 'https://10.96.0.1:443');
  });

  it('warns when the master Service cannot be read', async () => {
    const { vars, warnings } = await linked(true, [], null);
    assert.ok(!vars.some((v) => v.name.startsWith('KUBERNETES_')));
    assert.match(warnings.join('\n'), /KUBERNETES_SERVICE_\* and KUBERNETES_PORT\* are missing/);
  });

  it("lets a namespace's own kubernetes Service replace the master one", async () => {
    const own = service(NS, 'kubernetes', '10.96.200.1', [{ port: 8443 }]);
    const pod = livePod({}, { enableServiceLinks: true });
    const { vars } = await resolveEnv({ pod, container: 'app' }, fakeLookup({ services: [own] }));
    assert.equal(vars.find((v) => v.name === 'KUBERNETES_SERVICE_HOST')?.value, '10.96.200.1');
    const off = await resolveEnv(
      { pod: livePod({}, { enableServiceLinks: false }), container: 'app' },
      fakeLookup({ services: [own] }),
    );
    assert.equal(off.vars.find((v) => v.name === 'KUBERNETES_SERVICE_HOST')?.value, '10.96.0.1');
  });
});

describe('resolveEnv: containers', () => {
  it('resolves init containers and names the containers when one is missing', async () => {
    const pod = livePod(
      {},
      {
        enableServiceLinks: false,
        initContainers: [{ name: 'migrate', env: [{ name: 'STEP', value: 'init' }] }],
      },
    );
    const { vars } = await resolveEnv({ pod, container: 'migrate' }, fakeLookup({ master: null }));
    assert.deepEqual(values(vars), { STEP: 'init' });
    await assert.rejects(resolveEnv({ pod, container: 'nope' }, fakeLookup({})), (err: unknown) => {
      assert.ok(isDevboxError(err, 'NOT_FOUND'));
      assert.equal(err.message, 'container "nope" not found');
      assert.equal(err.hint, 'containers: app, migrate');
      return true;
    });
  });

  it('leaves out fileKeyRef values, which only the pod can read', async () => {
    const { vars, warnings } = await resolve([
      {
        name: 'FROM_FILE',
        valueFrom: { fileKeyRef: { volumeName: 'cfg', path: 'app.env', key: 'K' } } as never,
      },
    ]);
    assert.deepEqual(vars, []);
    assert.match(warnings[0] as string, /FROM_FILE/);
  });
});
