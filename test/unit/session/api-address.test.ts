import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { apiAddressForContainer } from '../../../src/session/api-address.js';

const noLookup = async (host: string): Promise<string> => {
  throw new Error(`unexpected lookup of ${host}`);
};

describe('apiAddressForContainer', () => {
  it('sends a loopback server through the host gateway and keeps its name for TLS', async () => {
    const a = await apiAddressForContainer('https://127.0.0.1:6443', undefined, noLookup);
    assert.deepEqual(a, {
      server: 'https://host.docker.internal:6443',
      tlsServerName: '127.0.0.1',
      extraHosts: ['host.docker.internal:host-gateway'],
    });
    const b = await apiAddressForContainer('https://localhost:44321', undefined, noLookup);
    assert.equal(b.server, 'https://host.docker.internal:44321');
    assert.equal(b.tlsServerName, 'localhost');
  });

  it('keeps a tls-server-name the kubeconfig already sets', async () => {
    const a = await apiAddressForContainer('https://127.0.0.1:6443', 'kubernetes.default', noLookup);
    assert.equal(a.tlsServerName, 'kubernetes.default');
  });

  it('leaves a routable IP alone', async () => {
    const a = await apiAddressForContainer('https://10.0.0.5:6443', undefined, noLookup);
    assert.deepEqual(a, { server: 'https://10.0.0.5:6443', tlsServerName: undefined, extraHosts: [] });
  });

  it('pins a named server with --add-host, resolved on this machine', async () => {
    const a = await apiAddressForContainer(
      'https://abc.eks.example:443',
      undefined,
      async () => '192.0.2.10',
    );
    assert.deepEqual(a, {
      server: 'https://abc.eks.example:443',
      tlsServerName: undefined,
      extraHosts: ['abc.eks.example:192.0.2.10'],
    });
  });
});
