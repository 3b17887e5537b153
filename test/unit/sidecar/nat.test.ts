import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  iptablesScript,
  NatAliases,
  type NatTarget,
  NatUnavailableError,
  nftLoadScript,
  nftUpdateScript,
  type ScriptRunner,
  systemNat,
} from '../../../src/sidecar/nat.js';

const web: NatTarget = { protocol: 'TCP', ip: '10.96.0.20', port: 80, alias: '127.64.0.1' };
const dns: NatTarget = { protocol: 'UDP', ip: '10.96.0.10', port: 53, alias: '127.64.0.2' };

describe('NAT scripts', () => {
  it('loads one table whose maps send each destination to its alias on the listener port', () => {
    const script = nftLoadScript(40001, [web, dns]);
    // Replacing a leftover table in the same transaction.
    assert.match(script, /^add table ip devbox\ndelete table ip devbox\ntable ip devbox \{/);
    assert.match(
      script,
      /map tcp_targets \{ type ipv4_addr \. inet_service : ipv4_addr; elements = \{ 10\.96\.0\.20 \. 80 : 127\.64\.0\.1 \} \}/,
    );
    assert.match(script, /map udp_targets \{[^}]*elements = \{ 10\.96\.0\.10 \. 53 : 127\.64\.0\.2 \} \}/);
    assert.match(script, /type nat hook output priority -100;/);
    assert.match(script, /meta l4proto tcp dnat to ip daddr \. tcp dport map @tcp_targets : 40001/);
    assert.match(script, /meta l4proto udp dnat to ip daddr \. udp dport map @udp_targets : 40001/);
    assert.doesNotMatch(nftLoadScript(40001), /elements/);
  });

  it('changes elements in one transaction, removals first', () => {
    const moved = { ...web, alias: '127.64.0.9' };
    assert.equal(
      nftUpdateScript([moved, dns], [web]),
      'delete element ip devbox tcp_targets { 10.96.0.20 . 80 }\n' +
        'add element ip devbox tcp_targets { 10.96.0.20 . 80 : 127.64.0.9 }\n' +
        'add element ip devbox udp_targets { 10.96.0.10 . 53 : 127.64.0.2 }\n',
    );
    assert.equal(nftUpdateScript([], []), '');
  });

  it('writes an iptables chain with one DNAT rule per destination, jumping to it once', () => {
    assert.equal(
      iptablesScript(40001, [web, dns], true),
      '*nat\n:DEVBOX-OUTPUT - [0:0]\n' +
        '-A DEVBOX-OUTPUT -d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 127.64.0.1:40001\n' +
        '-A DEVBOX-OUTPUT -d 10.96.0.10/32 -p udp -m udp --dport 53 -j DNAT --to-destination 127.64.0.2:40001\n' +
        '-A OUTPUT -j DEVBOX-OUTPUT\nCOMMIT\n',
    );
    assert.doesNotMatch(iptablesScript(40001, [], false), /-A OUTPUT/);
  });
});

describe('choosing a NAT backend', () => {
  const runner = (fail: Record<string, Error>) => {
    const calls: string[] = [];
    const run: ScriptRunner = async (file, _args, input) => {
      calls.push(`${file}: ${input.split('\n')[0]}`);
      if (fail[file]) throw fail[file];
    };
    return { run, calls };
  };

  it('takes nftables when nft loads the table', async () => {
    const { run, calls } = runner({});
    const table = await systemNat(run)(40001);
    assert.equal(table.backend, 'nftables');
    await table.update([web], []);
    await table.clear();
    assert.deepEqual(calls, [
      'nft: add table ip devbox',
      'nft: add element ip devbox tcp_targets { 10.96.0.20 . 80 : 127.64.0.1 }',
      'nft: delete table ip devbox',
    ]);
  });

  it('takes iptables-restore where nft is missing, reloading the whole chain on each change', async () => {
    const { run, calls } = runner({ nft: Object.assign(new Error('spawn nft ENOENT'), { code: 'ENOENT' }) });
    const table = await systemNat(run)(40001);
    assert.equal(table.backend, 'iptables');
    await table.update([web, dns], []);
    await table.update([], [web]);
    assert.equal(calls.length, 4);
  });

  it('names why each backend failed', async () => {
    const { run } = runner({
      nft: Object.assign(new Error('exit 1'), {
        stderr: 'Error: Could not process rule: Operation not permitted',
      }),
      'iptables-restore': Object.assign(new Error('spawn iptables-restore ENOENT'), { code: 'ENOENT' }),
    });
    await assert.rejects(systemNat(run)(40001), (err: Error) => {
      assert.ok(err instanceof NatUnavailableError);
      assert.match(err.message, /nft: Error: Could not process rule: Operation not permitted/);
      assert.match(err.message, /no iptables-restore command in the sidecar image/);
      return true;
    });
  });
});

describe('NAT aliases', () => {
  it('gives each destination its own 127.64.0.0/10 address and reuses released ones', () => {
    const aliases = new NatAliases();
    assert.equal(aliases.aliasFor('TCP/10.96.0.20/80'), '127.64.0.1');
    assert.equal(aliases.aliasFor('TCP/10.96.0.20/443'), '127.64.0.2');
    assert.equal(aliases.aliasFor('TCP/10.96.0.20/80'), '127.64.0.1');
    aliases.release('TCP/10.96.0.20/80');
    assert.equal(aliases.aliasFor('UDP/10.96.0.10/53'), '127.64.0.1');
    for (let i = 0; i < 300; i++) aliases.aliasFor(`TCP/10.96.1.${i}/80`);
    assert.equal(aliases.aliasFor('TCP/10.96.1.299/80'), '127.64.1.46');
    assert.equal(aliases.size, 302);
  });
});
