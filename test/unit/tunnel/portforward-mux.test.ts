import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import { TunnelClient } from '../../../src/tunnel/client.js';
import { openPortForward } from '../../../src/tunnel/portforward.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { eventually, Fixtures, portForwardBridge, readAll, TEST_TOKEN, within } from './harness.js';

// Self-signed, valid until 2126, SANs kubernetes.default.svc and localhost only (no IP): connecting
// to 127.0.0.1 needs the server name override, as with a rewritten host-gateway address.
const CERT = `-----BEGIN CERTIFICATE-----
MIIBsDCCAVagAwIBAgIUaHXA9l/BRvpmpQTRqoZaNvXsJYswCgYIKoZIzj0EAwIw
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAgFw0yNjExMjkxMjEzMDhaGA8yMTI2MTEw
NTEyMTMwOFowFTETMBEGA1UEAwwKa3ViZXJuZXRlczBZMBMGByqGSM49AgEGCCqG
SM49AwEHA0IABBGEPe0gVMyxjkuG7DkC3HlE7xpZkab/XW7d83flUEJBJ2BgiQ9o
yoO2vPhH0WtkQyyMLksD7BjrWu00y/NudPmjgYEwfzAdBgNVHQ4EFgQUQWgOQBJU
kLtjlN3YImt9t//0SwswHwYDVR0jBBgwFoAUQWgOQBJUkLtjlN3YImt9t//0Swsw
DwYDVR0TAQH/BAUwAwEB/zAsBgNVHREEJTAjghZrdWJlcm5ldGVzLmRlZmF1bHQu
c3Zjgglsb2NhbGhvc3QwCgYIKoZIzj0EAwIDSAAwRQIhALPOjl/YighblaYfQ53R
293Hq/XTfUfu7o0C8owUareTAiBS6GwRVx08zHK5ehayAyMDJERMSTo3jzV82Y0Z
+PPW6Q==
-----END CERTIFICATE-----
`;
const KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg0w2tt2s5B05xy+sN
LJAgPFI5P/MSqlb8ga+PUoNQR6ahRANCAAQRhD3tIFTMsY5Lhuw5Atx5RO8aWZGm
/11u3fN35VBCQSdgYIkPaMqDtrz4R9FrZEMsjC5LA+wY61rtNMvzbnT5
-----END PRIVATE KEY-----
`;

describe('tunnel over the port-forward client', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('verifies TLS against the CA under the overriding server name', async () => {
    const echo = await fx.echoServer();
    const bridge = await portForwardBridge(fx, echo, { cert: CERT, key: KEY });
    const base = { server: bridge.server, namespace: 'shop', pod: 'api-0', port: echo, ca: CERT };
    const stream = await openPortForward({ ...base, servername: 'kubernetes.default.svc' });
    stream.write('over tls');
    const [echoed] = await within(once(stream, 'data'), 5_000, 'echo');
    assert.equal(echoed.toString(), 'over tls');
    stream.destroy();
    await assert.rejects(openPortForward(base), (err) => {
      assert.ok(isDevboxError(err, 'TUNNEL'));
      assert.match((err as Error).message, /does not match the server name/);
      return true;
    });
    await assert.rejects(
      openPortForward({ ...base, ca: undefined, servername: 'kubernetes.default.svc' }),
      (err) => {
        assert.ok(isDevboxError(err, 'TUNNEL'));
        assert.match((err as Error).message, /TLS verification failed/);
        return true;
      },
    );
  });

  it('carries the HTTP/2 mux; losing the port-forward closes the client with an error', async () => {
    const echo = await fx.echoServer();
    const agent = await fx.agent();
    const bridge = await portForwardBridge(fx, agent.tunnelPort);
    const duplex = await openPortForward({
      server: bridge.server,
      namespace: 'shop',
      pod: 'api-0',
      port: agent.tunnelPort,
    });
    const client = await TunnelClient.connect(duplex, { token: TEST_TOKEN });
    fx.add(() => client.destroy());
    const streams = await Promise.all(Array.from({ length: 5 }, () => client.openTcp('127.0.0.1', echo)));
    const payload = Buffer.alloc(3 * 1024 * 1024, 5);
    const echoed = await Promise.all(
      streams.map((s) => {
        s.end(payload);
        return within(readAll(s), 10_000, 'echo');
      }),
    );
    for (const e of echoed) assert.ok(e.equals(payload));
    // Destroying a client releases its port-forward.
    const other = await openPortForward({
      server: bridge.server,
      namespace: 'shop',
      pod: 'api-0',
      port: agent.tunnelPort,
    });
    const otherClient = await TunnelClient.connect(other, { token: TEST_TOKEN });
    otherClient.destroy();
    await eventually(() => other.destroyed, 1_000, 'port-forward released');
    const closed = new Promise<Error | undefined>((resolve) => client.once('close', resolve));
    bridge.killAll();
    const err = await within(closed, 5_000, 'client close');
    assert.ok(err instanceof Error, 'closed with an error');
    assert.equal(duplex.destroyed, true);
    assert.equal(client.closed, true);
  });
});
