import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routesBetween } from '../../../src/session/local-routes.js';
import type { UpResult } from '../../../src/session/up.js';

function session(
  id: string,
  workload: string,
  intercepted: UpResult['intercepted'],
  more: Partial<UpResult> = {},
): UpResult {
  return {
    session: id,
    name: 'alice',
    route: { mode: 'global', headers: [] },
    filter: 'all requests',
    workload: `deployment/${workload}`,
    namespace: 'shop',
    context: 'dev',
    containers: { sidecar: `devbox-${workload}-sidecar`, service: `devbox-${workload}.shop`, serviceId: id },
    intercepted,
    resumed: false,
    warnings: [],
    ...more,
  };
}

describe('routes between local sessions', () => {
  const api = session('a1', 'api', [{ service: 'api', port: 80, protocol: 'TCP', appPort: 8080 }]);
  const inventory = session('b2', 'inventory', [
    { service: 'inventory', port: 80, protocol: 'TCP', appPort: 8080 },
    { service: 'inventory', port: 53, protocol: 'UDP', appPort: 5353 },
    { service: 'inventory-headless', port: 80, protocol: 'TCP', appPort: 8080 },
  ]);
  const clusterIps = new Map([
    ['shop/api', '10.96.0.10'],
    ['shop/inventory', '10.96.0.20'],
  ]);

  it("gives each session the other sessions' TCP Services with a ClusterIP, never its own", () => {
    const routes = routesBetween(
      [
        { result: api, address: '172.17.0.2' },
        { result: inventory, address: '172.17.0.3' },
      ],
      clusterIps,
    );
    assert.deepEqual(routes.get('a1'), [
      {
        service: 'shop/inventory',
        clusterIp: '10.96.0.20',
        port: 80,
        to: { host: '172.17.0.3', port: 8080 },
        container: 'devbox-inventory.shop',
      },
    ]);
    assert.deepEqual(routes.get('b2'), [
      {
        service: 'shop/api',
        clusterIp: '10.96.0.10',
        port: 80,
        to: { host: '172.17.0.2', port: 8080 },
        container: 'devbox-api.shop',
      },
    ]);
  });

  it('offers a filtered session only to a caller carrying the same personal key, and never a mirror', () => {
    const personal = { mode: 'filtered' as const, headers: [], personal: true };
    const callee = (more: Partial<UpResult>) =>
      routesBetween(
        [
          { result: { ...api, personalKey: 'k1', route: personal }, address: '172.17.0.2' },
          { result: { ...inventory, ...more }, address: '172.17.0.3' },
        ],
        clusterIps,
      ).get('a1');
    assert.equal(callee({ route: personal, personalKey: 'k1' })?.length, 1);
    assert.deepEqual(callee({ route: personal, personalKey: 'k2' }), []);
    assert.deepEqual(
      callee({ route: { mode: 'filtered', headers: [{ name: 'x-user', value: 'alice' }] } }),
      [],
    );
    assert.deepEqual(callee({ route: { mode: 'mirror', headers: [] } }), []);
    assert.equal(callee({})?.length, 1, 'a global callee takes every call');
  });

  it('offers nothing for a session whose container has no address on the Docker network', () => {
    const routes = routesBetween(
      [
        { result: api, address: '172.17.0.2' },
        { result: inventory, address: undefined },
      ],
      clusterIps,
    );
    assert.deepEqual(routes.get('a1'), []);
    assert.equal(routes.get('b2')?.length, 1);
  });
});
