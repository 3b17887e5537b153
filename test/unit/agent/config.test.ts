import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AGENT_DEFAULTS, parseAgentConfig } from '../../../src/agent/config.js';
import { parseResolvConf } from '../../../src/agent/resolv-conf.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('agent config', () => {
  it('reads the environment with defaults', () => {
    const config = parseAgentConfig({ DEVBOX_AGENT_TOKEN: 't', DEVBOX_INTERCEPT: '9080:8080, 9443:8443' });
    assert.equal(config.token, 't');
    assert.equal(config.tunnelHost, '127.0.0.1');
    assert.equal(config.tunnelPort, AGENT_DEFAULTS.tunnelPort);
    assert.equal(config.resolvConfPath, '/etc/resolv.conf');
    assert.equal(config.interceptHost, undefined);
    assert.deepEqual(config.intercepts, [
      { listenPort: 9080, appPort: 8080 },
      { listenPort: 9443, appPort: 8443 },
    ]);
  });

  it("keeps the API server's Service address the kubelet put in its env, when well formed", () => {
    const base = { DEVBOX_AGENT_TOKEN: 't' };
    const seen = parseAgentConfig({
      ...base,
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
      KUBERNETES_SERVICE_PORT: '443',
    });
    assert.deepEqual(seen.kubernetesService, { host: '10.96.0.1', port: 443 });
    const v6 = parseAgentConfig({
      ...base,
      KUBERNETES_SERVICE_HOST: 'fd00::1',
      KUBERNETES_SERVICE_PORT: '443',
    });
    assert.deepEqual(v6.kubernetesService, { host: 'fd00::1', port: 443 });
    assert.equal(parseAgentConfig(base).kubernetesService, undefined);
    const named = parseAgentConfig({
      ...base,
      KUBERNETES_SERVICE_HOST: 'kubernetes',
      KUBERNETES_SERVICE_PORT: '443',
    });
    assert.equal(named.kubernetesService, undefined);
    const badPort = parseAgentConfig({
      ...base,
      KUBERNETES_SERVICE_HOST: '10.96.0.1',
      KUBERNETES_SERVICE_PORT: 'x',
    });
    assert.equal(badPort.kubernetesService, undefined);
  });

  it('reports every problem at once', () => {
    assert.throws(
      () =>
        parseAgentConfig({
          DEVBOX_TUNNEL_PORT: 'abc',
          DEVBOX_INTERCEPT: '80,9080:9080,70000:1,47000:80,9902:81',
          DEVBOX_HEALTH_PORT: '9902',
          DEVBOX_PING_INTERVAL_MS: '1',
        }),
      (err) => {
        assert.ok(isDevboxError(err, 'BAD_INPUT'));
        const text = (err as Error).message;
        for (const part of [
          'DEVBOX_AGENT_TOKEN is required',
          'DEVBOX_TUNNEL_PORT',
          '"80"',
          "listens on the app's own port",
          '"70000:1"',
          'collides with DEVBOX_TUNNEL_PORT',
          'collides with DEVBOX_HEALTH_PORT',
          'DEVBOX_PING_INTERVAL_MS',
        ]) {
          assert.ok(text.includes(part), `${part} in: ${text}`);
        }
        return true;
      },
    );
  });
});

describe('resolv.conf', () => {
  it('parses nameservers (with test ports), search, ndots, timeout and attempts', () => {
    const conf = parseResolvConf(
      [
        '# comment',
        'search shop.svc.cluster.local svc.cluster.local cluster.local',
        'nameserver 10.96.0.10',
        'nameserver 127.0.0.1:5353',
        'nameserver fd00::a',
        'nameserver [::1]:5353',
        'nameserver not-an-ip',
        'options ndots:5 timeout:2 attempts:3 rotate',
      ].join('\n'),
    );
    assert.deepEqual(conf.nameservers, [
      { host: '10.96.0.10', port: 53 },
      { host: '127.0.0.1', port: 5353 },
      { host: 'fd00::a', port: 53 },
      { host: '::1', port: 5353 },
    ]);
    assert.deepEqual(conf.search, ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local']);
    assert.equal(conf.ndots, 5);
    assert.equal(conf.timeoutMs, 2000);
    assert.equal(conf.attempts, 3);
  });

  it('defaults like glibc', () => {
    const conf = parseResolvConf('');
    assert.deepEqual(conf, { nameservers: [], timeoutMs: 5000, attempts: 2, search: [], ndots: 1 });
  });
});
