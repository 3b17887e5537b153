/**
 * What the agent refuses whoever holds the token: dialing the pod's loopback and link-local
 * addresses, and serving files outside the app's volume mounts.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { forbiddenReason } from '../../../src/agent/target-policy.js';
import { StreamRefusedError } from '../../../src/tunnel/errors.js';
import { Fixtures, outsideAddress, readAll } from '../tunnel/harness.js';

const refusedAs = (status: number, code: string) => (err: unknown) => {
  assert.ok(err instanceof StreamRefusedError, String(err));
  assert.equal(err.status, status, err.message);
  assert.equal(err.remoteCode, code, err.message);
  return true;
};

describe('agent limits', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('knows loopback, link-local and unspecified addresses, also IPv4-mapped', () => {
    for (const ip of [
      '127.0.0.1',
      '127.9.9.9',
      '169.254.169.254',
      '0.0.0.0',
      '::1',
      '::',
      'fe80::1',
      'FE80::abcd',
      '::ffff:127.0.0.1',
      '::ffff:169.254.169.254',
    ]) {
      assert.ok(forbiddenReason(ip), ip);
    }
    for (const ip of [
      '10.96.0.1',
      '10.244.0.5',
      '192.168.1.1',
      '8.8.8.8',
      'fd00::1',
      '2001:db8::1',
      '::ffff:10.0.0.1',
    ]) {
      assert.equal(forbiddenReason(ip), undefined, ip);
    }
  });

  it('refuses to dial the pod loopback or link-local, by address or by name, with a clear code', async () => {
    const echo = await fx.echoServer();
    const agent = await fx.agent({ dialLocalTargets: false });
    const client = await fx.client(agent);
    for (const host of [
      '127.0.0.1',
      'localhost',
      '::1',
      '::ffff:127.0.0.1',
      '0.0.0.0',
      '169.254.169.254',
      'fe80::1',
    ]) {
      await assert.rejects(
        client.openTcp(host, echo, { timeoutMs: 5_000 }),
        refusedAs(403, 'EDEVBOXFORBIDDEN'),
        host,
      );
    }
    await assert.rejects(client.udpFlow('127.0.0.1', echo), refusedAs(403, 'EDEVBOXFORBIDDEN'));
    const stats = await client.stats();
    assert.equal(stats.totals.tcpOpened, 0);
    assert.equal(client.closed, false, 'a refusal ends only that stream');
  });

  it('still dials the addresses of the cluster', async () => {
    const address = outsideAddress();
    const server = net.createServer((s) => s.end('hello from outside loopback'));
    await new Promise<void>((resolve) => server.listen(0, address, resolve));
    fx.add(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const agent = await fx.agent({ dialLocalTargets: false });
    const client = await fx.client(agent);
    const stream = await client.openTcp(address, (server.address() as AddressInfo).port);
    stream.end();
    assert.equal((await readAll(stream)).toString(), 'hello from outside loopback');
  });

  it('serves files only under the volume mounts root, following no link out of it', async () => {
    const base = await mkdtemp(join(tmpdir(), 'devbox-limits-'));
    fx.add(() => rm(base, { recursive: true, force: true }));
    const root = join(base, 'devbox-pod');
    const outside = join(base, 'secrets');
    await mkdir(join(root, 'data'), { recursive: true });
    await mkdir(outside);
    await writeFile(join(root, 'data', 'ok.txt'), 'mine');
    await writeFile(join(outside, 'token'), 'not yours');
    await symlink(outside, join(root, 'data', 'escape'));
    const agent = await fx.agent({ filesRoot: root });
    const client = await fx.client(agent);
    const archive = await client.files(join(root, 'data'));
    assert.ok((await readAll(archive)).includes(Buffer.from('mine')));
    for (const path of [
      '/proc/self/environ',
      '/var/run/secrets/kubernetes.io/serviceaccount/token',
      join(outside, 'token'),
      `${root}/../secrets/token`,
      `${root}-other`,
      join(root, 'data', 'escape'),
      join(root, 'data', 'escape', 'token'),
    ]) {
      await assert.rejects(client.files(path), refusedAs(403, 'EOUTSIDEVOLUMES'), path);
    }
  });
});
