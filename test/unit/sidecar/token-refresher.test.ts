import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KubeApiError } from '../../../src/kube/api/index.js';
import { parseSidecarConfig } from '../../../src/sidecar/config.js';
import { refreshToken } from '../../../src/sidecar/token-refresher.js';
import { eventually } from './fakes.js';

const refresh = {
  account: 'devbox-sidecar',
  secret: 'devbox-sidecar-s1',
  secretUid: 'uid-1',
  expirationSeconds: 3600,
  expiresAt: new Date(Date.now() + 3600_000).toISOString(),
};

/** An API that answers TokenRequests with `answer(n)` for the n-th call, recording each. */
function tokenApi(answer: (n: number) => unknown) {
  const calls: { method: string; path: string; body: unknown }[] = [];
  return {
    calls,
    api: {
      async request(method: string, path: string, options: { body?: unknown } = {}) {
        calls.push({ method, path, body: options.body });
        const out = answer(calls.length);
        if (out instanceof Error) throw out;
        return out;
      },
    },
  };
}

const issued = (n: number) => ({
  status: { token: `token-${n}`, expirationTimestamp: new Date(Date.now() + 3600_000).toISOString() },
});

describe('sidecar token refresh', () => {
  let dir: string;
  let tokenFile: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'devbox-token-'));
    tokenFile = join(dir, 'token');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('renews at 80 % of the lifetime by default', async () => {
    await writeFile(tokenFile, 'token-0');
    const { calls, api } = tokenApi(issued);
    const soon = { ...refresh, expirationSeconds: 600, expiresAt: new Date(Date.now() + 150).toISOString() };
    const refresher = refreshToken({ api, namespace: 'shop', refresh: soon, tokenFile });
    try {
      // Issued 600 s before its expiry, which is 150 ms away: 80 % has long passed, renew at once.
      await eventually(() => calls.length === 1, 2_000, 'renewed');
    } finally {
      refresher.stop();
    }
  });

  it("asks for the sidecar's own account, bound to the session's Secret, and swaps the token file", async () => {
    await writeFile(tokenFile, 'token-0');
    const { calls, api } = tokenApi(issued);
    const refresher = refreshToken({ api, namespace: 'shop', refresh, tokenFile, renewDelay: () => 20 });
    try {
      await eventually(() => calls.length >= 2, 2_000, 'renewed twice');
      assert.equal(calls[0]!.method, 'POST');
      assert.equal(calls[0]!.path, '/api/v1/namespaces/shop/serviceaccounts/devbox-sidecar/token');
      assert.deepEqual((calls[0]!.body as { spec: unknown }).spec, {
        expirationSeconds: 3600,
        boundObjectRef: { apiVersion: 'v1', kind: 'Secret', name: 'devbox-sidecar-s1', uid: 'uid-1' },
      });
      await eventually(async () => (await readFile(tokenFile, 'utf8')).startsWith('token-'), 1_000, 'file');
      assert.notEqual(await readFile(tokenFile, 'utf8'), 'token-0');
    } finally {
      refresher.stop();
    }
  });

  it('retries a failed renewal, and stops once the session is gone (401)', async () => {
    await writeFile(tokenFile, 'token-0');
    const { calls, api } = tokenApi((n) =>
      n === 1 ? new Error('connection reset') : new KubeApiError(401, 'Unauthorized', 'token revoked'),
    );
    const refresher = refreshToken({
      api,
      namespace: 'shop',
      refresh,
      tokenFile,
      renewDelay: () => 10,
      retryMs: 20,
    });
    try {
      await eventually(() => calls.length === 2, 2_000, 'retried');
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(calls.length, 2, 'no renewal after the 401');
      assert.equal(await readFile(tokenFile, 'utf8'), 'token-0');
    } finally {
      refresher.stop();
    }
  });

  it('config: takes tokenRefresh only with a token file and a valid binding', () => {
    const base = {
      apiServer: 'https://10.0.0.1:6443',
      namespace: 'shop',
      agentSelector: 'app=api',
      sessionToken: 's',
      agentTunnelPort: 47000,
      statusPort: 8787,
    };
    const ok = parseSidecarConfig({ ...base, tokenFile: '/devbox/token', tokenRefresh: refresh });
    assert.deepEqual(ok.tokenRefresh, refresh);
    const fromEnv = parseSidecarConfig({ ...base, tokenFile: '/t', tokenRefresh: JSON.stringify(refresh) });
    assert.deepEqual(fromEnv.tokenRefresh, refresh);
    assert.throws(
      () => parseSidecarConfig({ ...base, token: 'x', tokenRefresh: refresh }),
      /tokenRefresh.*needs tokenFile/,
    );
    assert.throws(
      () =>
        parseSidecarConfig({ ...base, tokenFile: '/t', tokenRefresh: { ...refresh, expirationSeconds: 60 } }),
      /at least 600/,
    );
    assert.throws(
      () => parseSidecarConfig({ ...base, tokenFile: '/t', tokenRefresh: { ...refresh, secretUid: '' } }),
      /DEVBOX_TOKEN_REFRESH/,
    );
  });
});
