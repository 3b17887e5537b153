import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Workload } from '../../../src/kube/index.js';
import { podDnsSettings } from '../../../src/session/dns-settings.js';

function deployment(spec: Record<string, unknown> = {}): Workload {
  return {
    kind: 'Deployment',
    metadata: { name: 'api', namespace: 'shop' },
    spec: { selector: {}, template: { spec: { containers: [{ name: 'api' }], ...spec } } },
  } as Workload;
}

describe('podDnsSettings', () => {
  it("gives ClusterFirst pods the kubelet's search list and ndots:5", () => {
    assert.deepEqual(podDnsSettings(deployment(), 'shop', 'cluster.local'), {
      search: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'],
      options: ['ndots:5'],
    });
  });

  it("adds the pod's dnsConfig searches and overrides options by name", () => {
    const settings = podDnsSettings(
      deployment({
        dnsConfig: {
          searches: ['corp.example'],
          options: [{ name: 'ndots', value: '2' }, { name: 'edns0' }],
        },
      }),
      'shop',
      'k8s.test',
    );
    assert.deepEqual(settings, {
      search: ['shop.svc.k8s.test', 'svc.k8s.test', 'k8s.test', 'corp.example'],
      options: ['ndots:2', 'edns0'],
    });
  });

  it('uses only dnsConfig for dnsPolicy None', () => {
    const settings = podDnsSettings(
      deployment({ dnsPolicy: 'None', dnsConfig: { searches: ['a.example'] } }),
      'shop',
      'cluster.local',
    );
    assert.deepEqual(settings, { search: ['a.example'], options: [] });
  });
});
