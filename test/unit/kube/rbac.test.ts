import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import {
  DEVELOPER_PERMISSIONS,
  describePermission,
  permissionsFor,
  rbacManifests,
  rulesFor,
  SIDECAR_PERMISSIONS,
  sidecarDiscoveryRole,
} from '../../../src/kube/rbac.js';

// Tests run from the repository root (npm run test:unit).
const template = 'templates/rbac/devbox-developer-role.yaml';

describe('RBAC', () => {
  it('the template holds exactly the permissions the code checks', () => {
    // Parsed as plain data: a typed parser would drop a misspelled field and hide it.
    const docs = parseAllDocuments(readFileSync(template, 'utf8')).map((d) => {
      assert.deepEqual(d.errors, []);
      return d.toJS();
    });
    assert.deepEqual(docs, rbacManifests());
  });

  it("the discovery ClusterRole template is the code's, and reads Services and EndpointSlices only", () => {
    const docs = parseAllDocuments(readFileSync('templates/rbac/devbox-sidecar-discovery.yaml', 'utf8')).map(
      (d) => {
        assert.deepEqual(d.errors, []);
        return d.toJS();
      },
    );
    assert.deepEqual(docs, [sidecarDiscoveryRole()]);
    const rules = (sidecarDiscoveryRole().rules as { resources: string[]; verbs: string[] }[]).flatMap((r) =>
      r.resources.flatMap((res) => r.verbs.map((v) => `${v} ${res}`)),
    );
    assert.deepEqual(rules.sort(), [
      'list endpointslices',
      'list services',
      'watch endpointslices',
      'watch services',
    ]);
  });

  it("the sidecar's permissions are a subset of the developer's", () => {
    const dev = new Set(DEVELOPER_PERMISSIONS.map((p) => `${p.group}|${p.resource}|${p.verb}`));
    for (const p of SIDECAR_PERMISSIONS)
      assert.ok(dev.has(`${p.group}|${p.resource}|${p.verb}`), describePermission(p));
  });

  it('grants both get and create on pods/portforward', () => {
    for (const perms of [DEVELOPER_PERMISSIONS, SIDECAR_PERMISSIONS]) {
      const verbs = perms.filter((p) => p.resource === 'pods/portforward').map((p) => p.verb);
      assert.deepEqual(verbs.sort(), ['create', 'get']);
    }
  });

  it('lists nothing twice and nothing cluster-wide', () => {
    const keys = DEVELOPER_PERMISSIONS.map((p) => `${p.group}|${p.resource}|${p.verb}|${p.names ?? ''}`);
    assert.equal(new Set(keys).size, keys.length);
    for (const p of DEVELOPER_PERMISSIONS)
      assert.ok(!['nodes', 'namespaces', 'clusterroles'].includes(p.resource));
  });

  it('groups verbs into rules and describes permissions like kubectl', () => {
    const rules = rulesFor(SIDECAR_PERMISSIONS);
    assert.deepEqual(rules[0], {
      apiGroups: [''],
      resources: ['pods/portforward'],
      verbs: ['get', 'create'],
    });
    assert.equal(
      describePermission({ group: 'apps', resource: 'deployments', verb: 'update' }),
      'update deployments.apps',
    );
    assert.equal(
      describePermission({ group: '', resource: 'pods/portforward', verb: 'create' }),
      'create pods/portforward',
    );
    assert.equal(
      describePermission({
        group: '',
        resource: 'serviceaccounts/token',
        verb: 'create',
        names: ['devbox-sidecar'],
      }),
      'create serviceaccounts/token devbox-sidecar',
    );
  });

  it('asks only what a command needs', () => {
    const env = permissionsFor('env').map(describePermission);
    assert.ok(env.includes('get secrets'));
    assert.ok(env.includes('list services'));
    assert.ok(!env.some((d) => d.startsWith('update') || d.startsWith('create') || d.startsWith('delete')));
    assert.ok(permissionsFor('down').map(describePermission).includes('update deployments.apps'));
  });
});
