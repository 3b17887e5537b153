import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serviceVariablesOnAliases } from '../../../src/session/fallback-env.js';

describe('Service variables in fallback mode', () => {
  const aliases = new Map([
    ['10.96.0.20', '127.255.0.1'],
    ['10.96.0.30', '127.255.0.2'],
  ]);

  it("points the kubelet's Service variables at the aliases, every form of them", () => {
    const { env, changed } = serviceVariablesOnAliases(
      {
        INVENTORY_SERVICE_HOST: '10.96.0.20',
        INVENTORY_SERVICE_PORT: '80',
        INVENTORY_PORT: 'tcp://10.96.0.20:80',
        INVENTORY_PORT_80_TCP: 'tcp://10.96.0.20:80',
        INVENTORY_PORT_80_TCP_ADDR: '10.96.0.20',
        INVENTORY_PORT_80_TCP_PORT: '80',
        INVENTORY_PORT_80_TCP_PROTO: 'tcp',
        DNS_PORT_53_UDP_ADDR: '10.96.0.30',
        DNS_PORT_53_UDP: 'udp://10.96.0.30:53',
      },
      aliases,
    );
    assert.deepEqual(env, {
      INVENTORY_SERVICE_HOST: '127.255.0.1',
      INVENTORY_SERVICE_PORT: '80',
      INVENTORY_PORT: 'tcp://127.255.0.1:80',
      INVENTORY_PORT_80_TCP: 'tcp://127.255.0.1:80',
      INVENTORY_PORT_80_TCP_ADDR: '127.255.0.1',
      INVENTORY_PORT_80_TCP_PORT: '80',
      INVENTORY_PORT_80_TCP_PROTO: 'tcp',
      DNS_PORT_53_UDP_ADDR: '127.255.0.2',
      DNS_PORT_53_UDP: 'udp://127.255.0.2:53',
    });
    assert.equal(changed.length, 6);
  });

  it('leaves everything else alone: other keys, unknown addresses, values that only contain an address', () => {
    const input = {
      DATABASE_HOST: '10.96.0.20',
      MIRROR_SERVICE_HOST: '10.96.9.9',
      NOTES: 'see tcp://10.96.0.20:80',
      WEIRD_PORT: 'http://10.96.0.20:80',
    };
    assert.deepEqual(serviceVariablesOnAliases(input, aliases), { env: input, changed: [] });
  });
});
