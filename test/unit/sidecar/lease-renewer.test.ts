import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ApiTransport, KubeApiError, type RequestOptions } from '../../../src/kube/api/index.js';
import { renewLease } from '../../../src/sidecar/lease-renewer.js';

function fakeApi(
  answer: (n: number) => unknown,
): Pick<ApiTransport, 'request'> & { patches: { path: string; patch: unknown }[] } {
  const patches: { path: string; patch: unknown }[] = [];
  return {
    patches,
    async request(method: string, path: string, options: RequestOptions = {}) {
      assert.equal(method, 'PATCH');
      assert.equal(options.contentType, 'application/merge-patch+json');
      patches.push({ path, patch: options.body });
      const result = answer(patches.length);
      if (result instanceof Error) throw result;
      return result;
    },
  };
}

describe("the sidecar's session lease", () => {
  it('renews the Lease with a MicroTime until stopped, and goes on after a failed renewal', async () => {
    const api = fakeApi((n) => (n === 2 ? new KubeApiError(503, undefined, 'busy') : {}));
    const errors: string[] = [];
    const renewer = renewLease({
      api,
      namespace: 'shop',
      name: 'devbox-session-3f2a',
      everyMs: 10,
      onError: (what) => errors.push(what),
    });
    // Until the third renewal, however loaded the machine: a fixed sleep saw only two at times.
    const deadline = Date.now() + 5000;
    while (api.patches.length < 3 && Date.now() < deadline) await sleep(10);
    renewer.stop();
    const count = api.patches.length;
    assert.ok(count >= 3, `renewed ${count} times`);
    assert.equal(
      api.patches[0]!.path,
      '/apis/coordination.k8s.io/v1/namespaces/shop/leases/devbox-session-3f2a',
    );
    assert.match(
      (api.patches[0]!.patch as { spec: { renewTime: string } }).spec.renewTime,
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/,
    );
    assert.deepEqual(errors, ['renewing the session lease']);
    assert.ok(renewer.lastRenewal());
    await sleep(40);
    assert.equal(api.patches.length, count, 'no renewal after stop');
  });

  it('stops once the Lease is gone (the session was ended elsewhere)', async () => {
    const api = fakeApi(() => new KubeApiError(404, 'NotFound', 'not found'));
    const renewer = renewLease({ api, namespace: 'shop', name: 'devbox-session-3f2a', everyMs: 10 });
    await sleep(60);
    assert.equal(api.patches.length, 1);
    renewer.stop();
  });
});
