/**
 * The sidecar's token belongs to its session: it is bound to the session's Secret, which the
 * session's Lease owns, so `down` revokes it; it is not the long-lived kind that outlives the
 * session on a laptop.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker, kubectl } from '../../support/cluster.js';
import { tokenKubeconfig } from '../../support/developer.js';
import { startWorld, type World } from '../tunnel/fixture.js';

/** `kubectl get pods` with nothing but `token`: its output, or the error text. */
async function podsWith(ns: string, token: string): Promise<{ ok: boolean; text: string }> {
  try {
    // The later --kubeconfig wins over the admin's that kubectl() puts first.
    const config = tokenKubeconfig(ns, 'sidecar', token);
    return { ok: true, text: await kubectl(['--kubeconfig', config, 'get', 'pods', '-o', 'name']) };
  } catch (err) {
    return { ok: false, text: String(err) };
  }
}

describe("the sidecar's token", { timeout: 300_000 }, () => {
  let world: World;
  let token: string;

  before(async () => {
    world = await startWorld('sidecar-token', 'sidecar-token');
    // The runtime image holds Node and little else: no cat.
    const read = await docker([
      'exec',
      world.sidecar,
      'node',
      '-e',
      "process.stdout.write(require('node:fs').readFileSync('/devbox/token', 'utf8'))",
    ]);
    assert.equal(read.code, 0, read.stderr);
    token = read.stdout.trim();
  });

  after(async () => {
    await world?.teardown();
  });

  it('is bound to the session and lives an hour, renewed by the sidecar', async () => {
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
      exp: number;
      iat: number;
      'kubernetes.io': { secret?: { name: string }; serviceaccount: { name: string } };
    };
    assert.equal(claims['kubernetes.io'].serviceaccount.name, 'devbox-sidecar');
    assert.match(claims['kubernetes.io'].secret?.name ?? '', /^devbox-sidecar-/);
    assert.ok(claims.exp - claims.iat <= 3600, `lives ${claims.exp - claims.iat} s`);
    const works = await podsWith(world.ns, token);
    assert.ok(works.ok, works.text);
  });

  it('is refused (401) once the session is down', async () => {
    await world.down();
    const deadline = Date.now() + 20_000;
    let last = await podsWith(world.ns, token);
    while (last.ok && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      last = await podsWith(world.ns, token);
    }
    assert.equal(last.ok, false, 'the token still works after down');
    assert.match(last.text, /Unauthorized|must be logged in/);
  });
});
