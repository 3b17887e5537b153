import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  contextDirName,
  type EndpointInputs,
  modemOptions,
  normalizeHost,
  resolveDockerEndpoint,
} from '../../../src/docker/endpoint.js';
import { isDevboxError } from '../../../src/util/errors.js';

const home = '/home/dev';

function inputs(env: NodeJS.ProcessEnv, files: Record<string, string> = {}): EndpointInputs {
  return {
    env,
    home,
    readFile: (path) => (path in files ? Buffer.from(files[path]!) : undefined),
  };
}

function contextFiles(configDir: string, name: string, meta: object, tls: Record<string, string> = {}) {
  const id = contextDirName(name);
  const files: Record<string, string> = {
    [join(configDir, 'config.json')]: JSON.stringify({ currentContext: name, auths: {} }),
    [join(configDir, 'contexts', 'meta', id, 'meta.json')]: JSON.stringify(meta),
  };
  for (const [file, content] of Object.entries(tls)) {
    files[join(configDir, 'contexts', 'tls', id, 'docker', file)] = content;
  }
  return files;
}

describe('docker endpoint resolution', () => {
  it('names contexts by the SHA-256 of their name, as the docker CLI stores them', () => {
    // `docker context create remote` stores its metadata under this directory.
    assert.equal(
      contextDirName('remote'),
      'b71199ebd070b36beab7317920c2c2f1d777df8d05e5527d8458fda57cb17a7a',
    );
    assert.notEqual(contextDirName('remote'), contextDirName('default'));
  });

  it('uses the local socket when nothing is configured', () => {
    const endpoint = resolveDockerEndpoint(inputs({}));
    assert.deepEqual(endpoint, { host: 'unix:///var/run/docker.sock', source: 'default' });
    assert.deepEqual(modemOptions(endpoint, inputs({})), {
      socketPath: '/var/run/docker.sock',
      host: undefined,
      port: undefined,
    });
  });

  it('prefers DOCKER_HOST over DOCKER_CONTEXT and the current context', () => {
    const files = contextFiles(join(home, '.docker'), 'remote', {
      Endpoints: { docker: { Host: 'tcp://10.1.2.3:2375' } },
    });
    const endpoint = resolveDockerEndpoint(
      inputs({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock', DOCKER_CONTEXT: 'remote' }, files),
    );
    assert.equal(endpoint.host, 'unix:///run/user/1000/docker.sock');
    assert.equal(endpoint.source, 'DOCKER_HOST');
  });

  it('reads the current context from config.json and its endpoint from contexts/meta', () => {
    const files = contextFiles(join(home, '.docker'), 'remote', {
      Name: 'remote',
      Metadata: {},
      Endpoints: { docker: { Host: 'ssh://builder@build.example:2222', SkipTLSVerify: false } },
    });
    const endpoint = resolveDockerEndpoint(inputs({}, files));
    assert.deepEqual(endpoint, {
      host: 'ssh://builder@build.example:2222',
      source: 'context',
      context: 'remote',
    });
    const options = modemOptions(endpoint, inputs({ SSH_AUTH_SOCK: '/tmp/agent.sock' }));
    const { hostVerifier, ...sshOptions } = options.sshOptions ?? {};
    assert.deepEqual(
      { ...options, sshOptions },
      {
        socketPath: undefined,
        protocol: 'ssh',
        host: 'build.example',
        port: 2222,
        username: 'builder',
        sshOptions: { agent: '/tmp/agent.sock' },
      },
    );
    // No known_hosts here: no host key is accepted.
    assert.equal(hostVerifier?.(Buffer.from('any key')), false);
  });

  it('honours DOCKER_CONFIG and DOCKER_CONTEXT', () => {
    const files = contextFiles('/cfg', 'other', { Endpoints: { docker: { Host: 'tcp://127.0.0.1:2375' } } });
    // config.json names "other" as current; DOCKER_CONTEXT overrides it with "default".
    assert.equal(
      resolveDockerEndpoint(inputs({ DOCKER_CONFIG: '/cfg' }, files)).host,
      'tcp://127.0.0.1:2375',
    );
    assert.equal(
      resolveDockerEndpoint(inputs({ DOCKER_CONFIG: '/cfg', DOCKER_CONTEXT: 'default' }, files)).source,
      'default',
    );
  });

  it('an explicit context wins even over DOCKER_HOST', () => {
    const files = contextFiles(join(home, '.docker'), 'ci', {
      Endpoints: { docker: { Host: 'tcp://127.0.0.1:2375' } },
    });
    const endpoint = resolveDockerEndpoint(inputs({ DOCKER_HOST: 'unix:///x.sock' }, files), 'ci');
    assert.equal(endpoint.host, 'tcp://127.0.0.1:2375');
    assert.equal(endpoint.context, 'ci');
  });

  it('loads a context’s TLS material and verifies unless SkipTLSVerify', () => {
    const files = contextFiles(
      join(home, '.docker'),
      'secure',
      { Endpoints: { docker: { Host: 'tcp://docker.example:2376', SkipTLSVerify: false } } },
      { 'ca.pem': 'CA', 'cert.pem': 'CERT', 'key.pem': 'KEY' },
    );
    const endpoint = resolveDockerEndpoint(inputs({}, files));
    assert.equal(endpoint.tls?.verify, true);
    assert.equal(endpoint.tls?.ca?.toString(), 'CA');
    const options = modemOptions(endpoint, inputs({}));
    assert.equal(options.protocol, 'https');
    assert.equal(options.port, 2376);
    assert.equal(options.key?.toString(), 'KEY');
    assert.equal(options.agent, undefined);
  });

  it('turns off verification (and only that) for SkipTLSVerify', () => {
    const files = contextFiles(join(home, '.docker'), 'lax', {
      Endpoints: { docker: { Host: 'tcp://docker.example:2376', SkipTLSVerify: true } },
    });
    const options = modemOptions(resolveDockerEndpoint(inputs({}, files)), inputs({}));
    assert.equal(options.protocol, 'https');
    assert.ok(options.agent, 'an agent with rejectUnauthorized: false');
  });

  it('reads DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for tcp hosts', () => {
    const files = { '/certs/ca.pem': 'CA', '/certs/cert.pem': 'CERT', '/certs/key.pem': 'KEY' };
    const endpoint = resolveDockerEndpoint(
      inputs(
        { DOCKER_HOST: 'tcp://10.0.0.5:2376', DOCKER_TLS_VERIFY: '1', DOCKER_CERT_PATH: '/certs' },
        files,
      ),
    );
    assert.equal(endpoint.tls?.verify, true);
    assert.equal(endpoint.tls?.cert?.toString(), 'CERT');
    const plain = resolveDockerEndpoint(inputs({ DOCKER_HOST: 'tcp://10.0.0.5:2375' }));
    assert.equal(plain.tls, undefined);
    assert.deepEqual(modemOptions(plain, inputs({})), {
      socketPath: undefined,
      protocol: 'http',
      host: '10.0.0.5',
      port: 2375,
    });
  });

  it('accepts host:port without a scheme and IPv6 literals', () => {
    assert.equal(normalizeHost('10.0.0.5:2375'), 'tcp://10.0.0.5:2375');
    assert.equal(normalizeHost(' unix:///a.sock '), 'unix:///a.sock');
    const options = modemOptions({ host: 'tcp://[::1]:2375', source: 'DOCKER_HOST' }, inputs({}));
    assert.equal(options.host, '::1');
  });

  it('ssh without an agent falls back to the default key files', () => {
    const files = { [join(home, '.ssh', 'id_rsa')]: 'RSA KEY' };
    const options = modemOptions(
      { host: 'ssh://box', source: 'DOCKER_HOST' },
      inputs({ USER: 'dev' }, files),
    );
    assert.equal(options.username, 'dev');
    assert.equal(options.port, 22);
    assert.equal(options.sshOptions?.privateKey?.toString(), 'RSA KEY');
  });

  it('names a missing context and how to fix it', () => {
    const files = { [join(home, '.docker', 'config.json')]: JSON.stringify({ currentContext: 'gone' }) };
    assert.throws(
      () => resolveDockerEndpoint(inputs({}, files)),
      (err) =>
        isDevboxError(err, 'NO_DOCKER') && /gone/.test(err.message) && /docker context/.test(err.hint ?? ''),
    );
  });

  it('rejects unknown schemes with NO_DOCKER', () => {
    assert.throws(
      () => modemOptions({ host: 'fd://3', source: 'DOCKER_HOST' }, inputs({})),
      (err) => isDevboxError(err, 'NO_DOCKER') && /DOCKER_HOST/.test(err.message),
    );
  });
});
