/**
 * The sidecar's share links: made only for a personal session, handed to every agent pod, refused
 * (and taken back) when an agent cannot apply them; the status endpoint serves them to the
 * sidecar's own loopback only.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { SessionShares, SHARE_TTL_DEFAULT_S, type ShareTunnels } from '../../../src/sidecar/shares.js';
import { type StatusServer, startStatusServer } from '../../../src/sidecar/status-server.js';
import type { Share } from '../../../src/tunnel/share.js';
import { isDevboxError } from '../../../src/util/errors.js';

class RecordingTunnels implements ShareTunnels {
  readonly shares = new Map<string, Share>();
  canApply = true;

  addShare(share: Share): boolean {
    this.shares.set(share.key, share);
    return this.canApply;
  }

  revokeShares(key?: string): number {
    const keys = key === undefined ? [...this.shares.keys()] : [key].filter((k) => this.shares.has(k));
    for (const k of keys) this.shares.delete(k);
    return keys.length;
  }
}

describe('session shares', () => {
  it('makes a fresh 256-bit key per link for the personal key, expiring after the TTL', () => {
    const tunnels = new RecordingTunnels();
    const shares = new SessionShares('personal', tunnels, () => 1_000_000);
    const first = shares.create();
    const second = shares.create(60);
    assert.notEqual(first.key, second.key);
    assert.match(first.key, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(first.expires, new Date(1_000_000 + SHARE_TTL_DEFAULT_S * 1000).toISOString());
    assert.deepEqual(tunnels.shares.get(second.key), {
      key: second.key,
      sessionKey: 'personal',
      expiresAt: 1_060_000,
    });
    assert.equal(shares.revokeAll(), 2);
  });

  it('refuses a session without a personal key, and a TTL out of range, naming what to change', () => {
    const tunnels = new RecordingTunnels();
    assert.throws(
      () => new SessionShares(undefined, tunnels).create(),
      (err) => isDevboxError(err, 'CONFLICT') && /--personal/.test(err.hint ?? ''),
    );
    const shares = new SessionShares('personal', tunnels);
    for (const ttl of [0, -1, 1.5, Number.NaN, 8 * 24 * 3600]) {
      assert.throws(
        () => shares.create(ttl),
        (err) => isDevboxError(err, 'BAD_INPUT'),
        String(ttl),
      );
    }
    assert.equal(tunnels.shares.size, 0, 'nothing was handed out');
  });

  it('takes a link back when an agent cannot apply it, leaving the others', () => {
    const tunnels = new RecordingTunnels();
    const shares = new SessionShares('personal', tunnels);
    const kept = shares.create();
    tunnels.canApply = false;
    assert.throws(
      () => shares.create(),
      (err) => isDevboxError(err, 'TUNNEL'),
    );
    assert.deepEqual([...tunnels.shares.keys()], [kept.key]);
  });
});

describe('the status endpoint for shares', () => {
  let server: StatusServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  const start = async (personalKey: string | undefined) => {
    const tunnels = new RecordingTunnels();
    server = await startStatusServer({
      address: '127.0.0.1',
      port: 0,
      snapshot: async () => ({}),
      healthy: () => true,
      shares: new SessionShares(personalKey, tunnels),
    });
    return { tunnels, url: `http://127.0.0.1:${server.port}/shares` };
  };

  it('POST makes a link, DELETE revokes them all, errors come back as JSON with a status', async () => {
    const { tunnels, url } = await start('personal');
    const made = await fetch(`${url}?ttl=120`, { method: 'POST' });
    assert.equal(made.status, 200);
    const grant = (await made.json()) as { key: string; expires: string };
    assert.ok(tunnels.shares.has(grant.key));
    const bad = await fetch(`${url}?ttl=abc`, { method: 'POST' });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'BAD_INPUT');
    const revoked = await fetch(url, { method: 'DELETE' });
    assert.deepEqual(await revoked.json(), { revoked: 1 });
    assert.equal((await fetch(url)).status, 405);
  });

  it('answers 409 with the hint for a session that takes every request', async () => {
    const { url } = await start(undefined);
    const answer = await fetch(url, { method: 'POST' });
    assert.equal(answer.status, 409);
    const { error } = (await answer.json()) as { error: { code: string; hint: string } };
    assert.equal(error.code, 'CONFLICT');
    assert.match(error.hint, /--personal/);
  });
});
