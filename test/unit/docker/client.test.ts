import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { labelFilter, toCreateOptions, unreachable } from '../../../src/docker/client.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('toCreateOptions', () => {
  it('maps a sidecar spec: caps, DNS, published ports, volumes', () => {
    const options = toCreateOptions({
      name: 'devbox-sidecar-api',
      image: 'devbox-runtime:node20',
      cmd: ['node', '/devbox/sidecar.mjs'],
      env: { A: '1', B: 'x=y' },
      labels: { 'devbox.session': 'api' },
      user: '0',
      capAdd: ['NET_ADMIN'],
      dns: ['127.0.0.1'],
      dnsSearch: ['shop.svc.cluster.local'],
      dnsOptions: ['ndots:5'],
      ports: [
        { containerPort: 8080, hostPort: 18080, hostIp: '127.0.0.1' },
        { containerPort: 53, protocol: 'udp' },
      ],
      mounts: [
        { type: 'volume', source: 'devbox-api-files', target: '/var/run/secrets', readOnly: true },
        { type: 'tmpfs', target: '/scratch' },
      ],
    });
    assert.deepEqual(options.Env, ['A=1', 'B=x=y']);
    assert.equal(options.User, '0');
    assert.deepEqual(options.ExposedPorts, { '8080/tcp': {}, '53/udp': {} });
    assert.deepEqual(options.HostConfig?.PortBindings, {
      '8080/tcp': [{ HostPort: '18080', HostIp: '127.0.0.1' }],
      '53/udp': [{ HostPort: '' }],
    });
    assert.deepEqual(options.HostConfig?.CapAdd, ['NET_ADMIN']);
    assert.deepEqual(options.HostConfig?.DnsOptions, ['ndots:5']);
    assert.deepEqual(options.HostConfig?.Mounts, [
      { Type: 'volume', Source: 'devbox-api-files', Target: '/var/run/secrets', ReadOnly: true },
      { Type: 'tmpfs', Source: '', Target: '/scratch', ReadOnly: false },
    ]);
  });

  it('sets nothing a joiner may not have', () => {
    const options = toCreateOptions({ image: 'app', networkMode: 'container:abc' });
    assert.deepEqual(options, { Image: 'app', HostConfig: { NetworkMode: 'container:abc' } });
  });
});

describe('labelFilter', () => {
  it('writes key=value and bare keys', () => {
    assert.deepEqual(labelFilter({ 'devbox.session': 'api', 'devbox.managed': undefined }), [
      'devbox.session=api',
      'devbox.managed',
    ]);
  });
});

describe('unreachable', () => {
  const local = { host: 'unix:///var/run/docker.sock', source: 'default' as const };

  it('says the daemon is not running when the socket is missing', () => {
    const err = unreachable(local, Object.assign(new Error('connect ENOENT'), { code: 'ENOENT' }));
    assert.ok(isDevboxError(err, 'NO_DOCKER'));
    assert.match(err.message, /unix:\/\/\/var\/run\/docker.sock \(the default socket\): no socket/);
    assert.match(err.hint ?? '', /daemon running/);
    assert.match(err.hint ?? '', /DOCKER_HOST/);
  });

  it('points at the docker group on permission errors', () => {
    const err = unreachable(local, Object.assign(new Error('connect EACCES'), { code: 'EACCES' }));
    assert.match(err.hint ?? '', /docker` group/);
  });

  it('names the context and the SSH agent for ssh hosts', () => {
    const err = unreachable(
      { host: 'ssh://me@box', source: 'context', context: 'remote' },
      new Error('All configured authentication methods failed'),
    );
    assert.match(err.message, /from Docker context "remote"/);
    assert.match(err.hint ?? '', /SSH_AUTH_SOCK/);
  });
});
