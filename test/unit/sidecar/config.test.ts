import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadSidecarConfig, parseSidecarConfig } from '../../../src/sidecar/config.js';
import { DevboxError } from '../../../src/util/errors.js';

const complete = {
  apiServer: 'https://host.docker.internal:6443/',
  token: 'abc',
  ca: '-----BEGIN CERTIFICATE-----\n...',
  tlsServerName: 'kubernetes',
  namespace: 'shop',
  agentSelector: 'app=api',
  sessionToken: 's3cret',
  agentTunnelPort: 7700,
  interceptPorts: [{ port: 8080, appPort: 3000 }, 9090],
  statusPort: 7780,
};

describe('sidecar config', () => {
  it('accepts a complete JSON object and fills defaults', () => {
    const config = parseSidecarConfig(complete);
    assert.equal(config.apiServer, 'https://host.docker.internal:6443');
    assert.deepEqual(config.interceptPorts, [
      { port: 8080, appPort: 3000 },
      { port: 9090, appPort: 9090 },
    ]);
    assert.equal(config.dnsAddress, '127.0.0.1');
    assert.equal(config.dnsPort, 53);
    assert.equal(config.statusAddress, '127.0.0.1');
    assert.equal(config.agentContainer, 'devbox-agent');
    assert.equal(config.forceFallback, false);
    assert.equal(config.portForward, 'auto');
    assert.equal(config.nat, 'auto');
    assert.equal(config.natPort, 0);
    assert.deepEqual(config.appPorts, []);
    assert.equal(config.kubernetesService, undefined);
  });

  it('reads the NAT settings, the app ports and the kubernetes Service, from JSON or env', () => {
    const config = loadSidecarConfig(undefined, {
      DEVBOX_API_SERVER: 'https://10.0.0.1:6443',
      DEVBOX_TOKEN: 't',
      DEVBOX_NAMESPACE: 'shop',
      DEVBOX_AGENT_SELECTOR: 'app=api',
      DEVBOX_SESSION_TOKEN: 's',
      DEVBOX_AGENT_TUNNEL_PORT: '7700',
      DEVBOX_STATUS_PORT: '7780',
      DEVBOX_NAT: 'off',
      DEVBOX_APP_PORTS: '8080, 5432',
      DEVBOX_KUBERNETES_SERVICE: '10.96.0.1:443',
    });
    assert.equal(config.nat, 'off');
    assert.deepEqual(config.appPorts, [8080, 5432]);
    assert.deepEqual(config.kubernetesService, { host: '10.96.0.1', port: 443 });
    assert.deepEqual(
      parseSidecarConfig({ ...complete, kubernetesService: { host: 'fd00::1', port: '443' } })
        .kubernetesService,
      { host: 'fd00::1', port: 443 },
    );
    assert.throws(
      () =>
        parseSidecarConfig({
          ...complete,
          nat: 'maybe',
          appPorts: [8080, 70000],
          natPort: 8080,
          kubernetesService: 'kubernetes:443',
        }),
      (err: Error) => {
        assert.match(err.message, /invalid nat \(JSON "nat" or env DEVBOX_NAT\): must be auto or off/);
        assert.match(err.message, /invalid appPorts .*bad port 70000/);
        assert.match(err.message, /invalid natPort .*8080 is one of the app's ports/);
        assert.match(err.message, /invalid kubernetesService .*expected an IP address and port/);
        return true;
      },
    );
  });

  it('names every missing field with its JSON key and env variable, all at once', () => {
    let caught: unknown;
    try {
      parseSidecarConfig({ apiServer: 'https://x:6443' });
    } catch (err) {
      caught = err;
    }
    assert.ok(caught instanceof DevboxError);
    assert.equal(caught.code, 'BAD_INPUT');
    for (const [key, env] of [
      ['namespace', 'DEVBOX_NAMESPACE'],
      ['agentSelector', 'DEVBOX_AGENT_SELECTOR'],
      ['sessionToken', 'DEVBOX_SESSION_TOKEN'],
      ['agentTunnelPort', 'DEVBOX_AGENT_TUNNEL_PORT'],
      ['statusPort', 'DEVBOX_STATUS_PORT'],
      ['token', 'DEVBOX_TOKEN'],
    ]) {
      assert.match(caught.message, new RegExp(`missing ${key} \\(JSON "${key}" or env ${env}`), key);
    }
    assert.doesNotMatch(caught.message, /missing apiServer/);
  });

  it('rejects malformed values with the field name', () => {
    assert.throws(
      () => parseSidecarConfig({ ...complete, agentTunnelPort: 'seventy', apiServer: 'not a url' }),
      (err: Error) =>
        /invalid agentTunnelPort .*DEVBOX_AGENT_TUNNEL_PORT/.test(err.message) &&
        /invalid apiServer/.test(err.message),
    );
    assert.throws(
      () => parseSidecarConfig({ ...complete, interceptPorts: ['80:x'] }),
      /invalid interceptPorts .*"80:x"/,
    );
    assert.throws(
      () => parseSidecarConfig({ ...complete, portForward: 'h2' }),
      /invalid portForward .*DEVBOX_PORT_FORWARD.*one of auto, spdy, spdy-websocket, websocket/,
    );
  });

  it('overlays environment variables on the file, env winning', () => {
    const files: Record<string, string> = { '/etc/devbox/sidecar.json': JSON.stringify(complete) };
    const config = loadSidecarConfig(
      '/etc/devbox/sidecar.json',
      {
        DEVBOX_NAMESPACE: 'other',
        DEVBOX_INTERCEPT_PORTS: '8080:3000, 9000',
        DEVBOX_STATUS_PORT: '9999',
        DEVBOX_FORCE_FALLBACK: 'true',
        DEVBOX_PORT_FORWARD: 'websocket',
      },
      (p) => files[p] ?? '',
    );
    assert.equal(config.namespace, 'other');
    assert.equal(config.statusPort, 9999);
    assert.equal(config.forceFallback, true);
    assert.equal(config.portForward, 'websocket');
    assert.deepEqual(config.interceptPorts, [
      { port: 8080, appPort: 3000 },
      { port: 9000, appPort: 9000 },
    ]);
    assert.equal(config.sessionToken, 's3cret');
  });

  it('works from the environment alone, with a token file', () => {
    const config = loadSidecarConfig(undefined, {
      DEVBOX_API_SERVER: 'https://10.0.0.1:443',
      DEVBOX_TOKEN_FILE: '/var/run/token',
      DEVBOX_NAMESPACE: 'shop',
      DEVBOX_AGENT_SELECTOR: 'app=api',
      DEVBOX_SESSION_TOKEN: 't',
      DEVBOX_AGENT_TUNNEL_PORT: '7700',
      DEVBOX_STATUS_PORT: '7780',
    });
    assert.equal(config.tokenFile, '/var/run/token');
    assert.equal(config.token, undefined);
    assert.deepEqual(config.interceptPorts, []);
  });

  it('says which file could not be read or parsed', () => {
    assert.throws(
      () =>
        loadSidecarConfig('/nope.json', {}, () => {
          throw new Error('ENOENT');
        }),
      /cannot read sidecar config \/nope.json/,
    );
    assert.throws(() => loadSidecarConfig('/bad.json', {}, () => '[1,2]'), /\/bad.json is not a JSON object/);
  });
});
