import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Backoff } from '../../../src/kube/api/index.js';
import type { AgentPod } from '../../../src/sidecar/resources.js';
import {
  NoTunnelError,
  TUNNEL_RECONNECT_BACKOFF,
  TunnelManager,
} from '../../../src/sidecar/tunnel-manager.js';
import { buildAReply, buildQuery } from '../../support/dns.js';
import { eventually, FakeDialer } from './fakes.js';

const pod = (name: string, ready = true, uid = `uid-${name}`): AgentPod => ({
  name,
  uid,
  ip: '10.244.0.9',
  ready,
});

describe('tunnel manager', () => {
  let manager: TunnelManager | undefined;
  afterEach(async () => {
    await manager?.close();
    manager = undefined;
  });

  const make = (dialer: FakeDialer) =>
    new TunnelManager({
      dialer: dialer.dial,
      agentPort: 7700,
      onInbound: () => {},
      backoff: { initialMs: 10, maxMs: 40 },
    });

  it('opens one tunnel per ready pod and none for pods that are not ready', async () => {
    const dialer = new FakeDialer();
    manager = make(dialer);
    manager.update([pod('a'), pod('b'), pod('c', false)]);
    await eventually(() => manager!.status().filter((t) => t.state === 'up').length === 2);
    assert.deepEqual(dialer.dials.sort(), ['a', 'b']);
    assert.ok(manager.ready);
  });

  it('reconnects with backoff after a tunnel dies, counting reconnects', async () => {
    const dialer = new FakeDialer();
    manager = make(dialer);
    manager.update([pod('a')]);
    await eventually(() => manager!.status()[0]?.state === 'up');
    dialer.links[0]!.close();
    await eventually(
      () => dialer.dials.length === 2 && manager!.status()[0]?.state === 'up',
      2000,
      'reconnected',
    );
    assert.equal(manager.status()[0]!.reconnects, 1);
  });

  it('keeps retrying failed dials with growing delays and records the error', async () => {
    const dialer = new FakeDialer();
    dialer.fail = true;
    manager = make(dialer);
    manager.update([pod('a')]);
    await eventually(() => dialer.dials.length >= 4, 2000, 'four attempts');
    const status = manager.status()[0]!;
    assert.match(status.lastError ?? '', /dial a failed/);
    assert.ok(status.reconnects >= 3);
    assert.equal(manager.ready, false);
    dialer.fail = false;
    await eventually(() => manager!.status()[0]?.state === 'up', 2000, 'up after the failures stop');
  });

  it('dials a lost agent again at least every 2 s however long it has failed (the API server may return any moment)', () => {
    const backoff = new Backoff({ ...TUNNEL_RECONNECT_BACKOFF, random: () => 0.999_999 });
    const delays = Array.from({ length: 40 }, () => backoff.next());
    assert.ok(Math.max(...delays) <= 2_000, `delays grew to ${Math.max(...delays)} ms`);
  });

  it('hands share links to every agent pod, also to tunnels opened later, until they are revoked or expire', async () => {
    const dialer = new FakeDialer();
    manager = make(dialer);
    const share = (key: string, expiresAt = Date.now() + 60_000) => ({
      key,
      sessionKey: 'session',
      expiresAt,
    });
    assert.equal(manager.addShare(share('early')), false, 'no tunnel is up to take it yet');
    manager.update([pod('a')]);
    await eventually(() => manager!.ready);
    assert.equal(manager.addShare(share('k1')), true);
    manager.addShare(share('stale', Date.now() - 1));
    manager.update([pod('a'), pod('b')]);
    await eventually(() => manager!.status().filter((t) => t.state === 'up').length === 2);
    const [a, b] = dialer.links;
    assert.deepEqual(a!.shareLog, ['+early', '+k1', '+stale']);
    assert.deepEqual(b!.shareLog, ['+early', '+k1'], 'a later tunnel gets the live shares only');

    assert.equal(manager.revokeShares(), 2);
    assert.deepEqual(b!.shareLog.slice(2), ['-early', '-k1']);
    a!.close();
    await eventually(() => dialer.links.length === 3 && manager!.status().every((t) => t.state === 'up'));
    assert.deepEqual(dialer.links[2]!.shareLog, [], 'a reconnected tunnel gets no revoked share');
  });

  it('closes the tunnel of a pod that goes away and stops dialing it', async () => {
    const dialer = new FakeDialer();
    manager = make(dialer);
    manager.update([pod('a')]);
    await eventually(() => manager!.ready);
    manager.update([]);
    assert.equal(dialer.links[0]!.isClosed, true);
    assert.deepEqual(manager.status(), []);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(dialer.dials.length, 1);
  });

  it('replaces the tunnel when the pod is recreated under the same name', async () => {
    const dialer = new FakeDialer();
    manager = make(dialer);
    manager.update([pod('a')]);
    await eventually(() => manager!.ready);
    manager.update([pod('a', true, 'uid-new')]);
    await eventually(() => dialer.dials.length === 2 && manager!.ready);
    assert.equal(dialer.links[0]!.isClosed, true);
  });

  it('drains a pod that stops being ready: no new streams, tunnel kept until it is gone', async () => {
    const dialer = new FakeDialer(
      () => undefined,
      async (q) => buildAReply(q, ['10.0.0.1']),
    );
    manager = make(dialer);
    manager.update([pod('a')]);
    await eventually(() => manager!.ready);
    manager.update([pod('a', false)]);
    assert.equal(manager.status()[0]!.state, 'draining');
    assert.equal(dialer.links[0]!.isClosed, false);
    await assert.rejects(manager.dnsQuery(buildQuery(1, 'x')), NoTunnelError);
    manager.update([pod('a', true)]);
    assert.equal(manager.status()[0]!.state, 'up');
    assert.ok((await manager.dnsQuery(buildQuery(1, 'x'))).length > 12);
  });

  it('fails DNS at once without a tunnel, but lets TCP wait briefly for one', async () => {
    const dialer = new FakeDialer(() => undefined);
    manager = make(dialer);
    await assert.rejects(manager.dnsQuery(buildQuery(1, 'x')), NoTunnelError);
    const pending = manager.openTcp('10.96.0.1', 80, undefined, 2000);
    manager.update([pod('a')]);
    // The loopback link refuses every target: the point is that the call reached a tunnel.
    await assert.rejects(pending, /connection refused/);
    assert.deepEqual(dialer.links[0]!.opened, ['tcp 10.96.0.1:80']);
    await assert.rejects(manager.openTcp('10.96.0.1', 80, undefined, 0), /connection refused/);
  });

  it('spreads new streams over tunnels by load', async () => {
    const dialer = new FakeDialer(() => undefined);
    manager = make(dialer);
    manager.update([pod('a'), pod('b')]);
    await eventually(() => manager!.status().filter((t) => t.state === 'up').length === 2);
    const [first, second] = dialer.links;
    first!.stats = () => ({ streamsOpen: 5 });
    await manager.openTcp('10.0.0.1', 1).catch(() => {});
    assert.equal(second!.opened.length, 1);
    assert.equal(first!.opened.length, 0);
  });
});
