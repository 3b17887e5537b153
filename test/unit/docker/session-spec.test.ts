import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ContainerSummary, toCreateOptions } from '../../../src/docker/client.js';
import {
  containerNames,
  groupSessions,
  newSessionId,
  type SessionSpec,
  serviceContainerSpec,
  sessionLabels,
  sidecarContainerSpec,
} from '../../../src/docker/session-spec.js';

function spec(): SessionSpec {
  return {
    session: { id: 'abc123def456', workload: 'api', namespace: 'shop', context: 'kind-dev' },
    labels: { 'devbox.version': '0.1.0', 'devbox.session': 'must-not-win' },
    sidecar: {
      image: 'devbox-runtime:node20',
      bundle: 'console.log(1)',
      config: { namespace: 'shop' },
      dnsSearch: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'],
      dnsOptions: ['ndots:5'],
      extraHosts: ['host.docker.internal:host-gateway'],
      ports: [
        { containerPort: 3000, hostPort: 8080 },
        { containerPort: 5353, hostPort: 5353, protocol: 'udp', hostIp: '127.0.0.1' },
      ],
      hostname: 'api-7d9c-abcde',
    },
    service: {
      image: 'shop/api:dev',
      entrypoint: ['/bin/app'],
      cmd: ['--port', '3000'],
      env: { LOG_LEVEL: 'debug' },
      workingDir: '/srv',
      user: '1000:1000',
      mounts: [
        { source: '/home/me/api/src', target: '/srv/src', readOnly: true },
        { source: '/home/me/cache', target: '/cache' },
      ],
      tty: true,
      openStdin: true,
    },
  };
}

describe('session labels and names', () => {
  it('labels carry the session, role, workload, namespace and context; ours win over extras', () => {
    assert.deepEqual(sessionLabels(spec().session, 'sidecar', { 'devbox.session': 'x', team: 'a' }), {
      team: 'a',
      'devbox.session': 'abc123def456',
      'devbox.role': 'sidecar',
      'devbox.workload': 'api',
      'devbox.namespace': 'shop',
      'devbox.context': 'kind-dev',
    });
    const noContext = sessionLabels({ id: 's', workload: 'w', namespace: 'n' }, 'service');
    assert.equal('devbox.context' in noContext, false);
  });

  it('names containers after the workload, reduced to what Docker accepts', () => {
    assert.deepEqual(containerNames('api'), { sidecar: 'devbox-api-sidecar', service: 'devbox-api' });
    assert.deepEqual(containerNames('statefulset/db'), {
      sidecar: 'devbox-statefulset-db-sidecar',
      service: 'devbox-statefulset-db',
    });
    assert.throws(() => containerNames('///'), /Cannot name containers/);
  });

  it('session ids are 12 hex digits and differ', () => {
    const a = newSessionId();
    assert.match(a, /^[0-9a-f]{12}$/);
    assert.notEqual(a, newSessionId());
  });
});

describe('sidecar and service specs', () => {
  it('the sidecar owns DNS, hosts, hostname and published ports; root with NET_ADMIN, never privileged', () => {
    const options = toCreateOptions(sidecarContainerSpec(spec()));
    assert.equal(options.name, 'devbox-api-sidecar');
    assert.equal(options.Image, 'devbox-runtime:node20');
    assert.deepEqual(options.Cmd, [
      'node',
      '--max-semi-space-size=1',
      '--expose-gc',
      '/devbox/sidecar.mjs',
      '/devbox/config.json',
    ]);
    assert.equal(options.User, '0');
    assert.equal(options.Hostname, 'api-7d9c-abcde');
    assert.equal(options.StopSignal, 'SIGTERM');
    assert.equal(options.StopTimeout, 12);
    const host = options.HostConfig ?? {};
    assert.deepEqual(host.CapAdd, ['NET_ADMIN']);
    assert.equal(host.Privileged, undefined);
    assert.deepEqual(host.Dns, ['127.0.0.1']);
    assert.deepEqual(host.DnsSearch, ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    assert.deepEqual(host.DnsOptions, ['ndots:5']);
    assert.deepEqual(host.ExtraHosts, ['host.docker.internal:host-gateway']);
    assert.deepEqual(host.PortBindings, {
      '3000/tcp': [{ HostPort: '8080' }],
      '5353/udp': [{ HostPort: '5353', HostIp: '127.0.0.1' }],
    });
    assert.equal(host.Mounts, undefined, 'files travel by tar, not bind mounts');
    assert.equal(options.Labels?.['devbox.role'], 'sidecar');
    assert.equal(options.Labels?.['devbox.session'], 'abc123def456');
    assert.equal(options.Labels?.['devbox.version'], '0.1.0');
  });

  it('netAdmin false drops the capability; a stand-in command replaces the daemon', () => {
    const s = spec();
    s.sidecar.netAdmin = false;
    s.sidecar.cmd = ['node', '/devbox/sidecar.mjs', '--stand-in'];
    s.sidecar.name = 'custom-sidecar';
    const options = toCreateOptions(sidecarContainerSpec(s));
    assert.equal(options.HostConfig?.CapAdd, undefined);
    assert.deepEqual(options.Cmd, ['node', '/devbox/sidecar.mjs', '--stand-in']);
    assert.equal(options.name, 'custom-sidecar');
  });

  it('the service joins the sidecar and sets none of what Docker refuses on a joiner', () => {
    const options = toCreateOptions(serviceContainerSpec(spec(), 'f00d'));
    const host = options.HostConfig ?? {};
    assert.equal(host.NetworkMode, 'container:f00d');
    for (const refused of ['Dns', 'DnsSearch', 'DnsOptions', 'ExtraHosts', 'PortBindings'] as const)
      assert.equal(host[refused], undefined, refused);
    assert.equal(options.Hostname, undefined);
    assert.equal(options.ExposedPorts, undefined);
    assert.equal(options.name, 'devbox-api');
    assert.equal(options.Image, 'shop/api:dev');
    assert.deepEqual(options.Entrypoint, ['/bin/app']);
    assert.deepEqual(options.Cmd, ['--port', '3000']);
    assert.deepEqual(options.Env, ['LOG_LEVEL=debug']);
    assert.equal(options.WorkingDir, '/srv');
    assert.equal(options.User, '1000:1000');
    assert.equal(options.Tty, true);
    assert.equal(options.OpenStdin, true);
    assert.deepEqual(host.Mounts, [
      { Type: 'bind', Source: '/home/me/api/src', Target: '/srv/src', ReadOnly: true },
      { Type: 'bind', Source: '/home/me/cache', Target: '/cache', ReadOnly: false },
    ]);
    assert.equal(options.Labels?.['devbox.role'], 'service');
  });
});

describe('groupSessions', () => {
  const container = (
    name: string,
    session: string | undefined,
    role: string,
    state: string,
    created: number,
    extra: Record<string, string> = {},
  ): ContainerSummary => ({
    id: `id-${name}`,
    name,
    image: 'img',
    state,
    status: state === 'running' ? 'Up 1 minute' : 'Exited (0)',
    created,
    labels: session
      ? {
          'devbox.session': session,
          'devbox.role': role,
          'devbox.workload': name.split('-')[1] ?? '',
          'devbox.namespace': 'shop',
          ...extra,
        }
      : {},
  });

  it('groups by session label with sidecar, service, state and oldest creation time', () => {
    const sessions = groupSessions([
      container('devbox-api', 's1', 'service', 'running', 1_700_000_010),
      container('devbox-api-sidecar', 's1', 'sidecar', 'running', 1_700_000_000, { 'devbox.context': 'dev' }),
      container('devbox-web-sidecar', 's2', 'sidecar', 'running', 1_600_000_000),
      container('devbox-web', 's2', 'service', 'exited', 1_600_000_001),
      container('devbox-db-sidecar', 's3', 'sidecar', 'exited', 1_800_000_000),
      container('devbox-db', 's3', 'service', 'exited', 1_800_000_001),
      container('devbox-old-sidecar', 's4', 'sidecar', 'running', 1_900_000_000),
      container('unrelated', undefined, '', 'running', 1),
    ]);
    assert.deepEqual(
      sessions.map((s) => [s.id, s.workload, s.state]),
      [
        ['s2', 'web', 'degraded'],
        ['s1', 'api', 'running'],
        ['s3', 'db', 'stopped'],
        ['s4', 'old', 'degraded'],
      ],
    );
    const api = sessions[1];
    assert.equal(api?.sidecar?.name, 'devbox-api-sidecar');
    assert.equal(api?.service?.name, 'devbox-api');
    assert.equal(api?.context, 'dev');
    assert.equal(api?.namespace, 'shop');
    assert.equal(api?.created.toISOString(), new Date(1_700_000_000_000).toISOString());
    assert.deepEqual(
      api?.containers.map((c) => c.role),
      ['sidecar', 'service'],
    );
    assert.equal(sessions[3]?.service, undefined, 'a session whose service is gone');
  });

  it('no labelled containers, no sessions', () => {
    assert.deepEqual(groupSessions([]), []);
  });
});
