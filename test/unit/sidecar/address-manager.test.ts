import assert from 'node:assert/strict';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { AddressManager, desiredAddresses } from '../../../src/sidecar/address-manager.js';
import { rewriteARecords } from '../../../src/sidecar/dns-wire.js';
import { newTrafficStats, type Outbound } from '../../../src/sidecar/forwarders.js';
import { AddressPermissionError, AliasAllocator, ipCommandAdder } from '../../../src/sidecar/loopback.js';
import type { NatOpener, NatTable, NatTarget } from '../../../src/sidecar/nat.js';
import type { EndpointSliceInfo, ServiceInfo } from '../../../src/sidecar/resources.js';
import { aRecords, buildAReply, buildQuery } from '../../support/dns.js';
import {
  eventually,
  LoopbackLink,
  RecordingAdder,
  tcpEcho,
  tcpRoundTrip,
  udpEcho,
  udpRoundTrip,
} from './fakes.js';

/** A port that nothing listens on right now, on any address. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

const svc = (
  name: string,
  clusterIPs: string[],
  ports: ServiceInfo['ports'],
  headless = false,
  namespace = 'shop',
): ServiceInfo => ({
  name,
  namespace,
  clusterIPs,
  headless,
  ports,
});

describe('desired addresses', () => {
  it('takes ClusterIPs with their ports, and headless endpoints with slice and service ports', () => {
    const services = [
      svc('web', ['10.96.0.20', 'fd00::20'], [{ name: 'http', port: 80, protocol: 'TCP' }]),
      svc(
        'dns',
        ['10.96.0.10'],
        [
          { name: 'dns', port: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, protocol: 'TCP' },
        ],
      ),
      svc('db', [], [{ name: 'pg', port: 5432, protocol: 'TCP' }], true),
      svc('ext', [], []),
    ];
    const slices: EndpointSliceInfo[] = [
      {
        name: 'db-x',
        namespace: 'shop',
        service: 'db',
        addressType: 'IPv4',
        addresses: ['10.244.0.5', '10.244.1.6'],
        ports: [{ name: 'pg', port: 15432, protocol: 'TCP' }],
      },
      // Slices of non-headless services add nothing: their ClusterIP is the way in.
      {
        name: 'web-x',
        namespace: 'shop',
        service: 'web',
        addressType: 'IPv4',
        addresses: ['10.244.0.7'],
        ports: [],
      },
      {
        name: 'db-fqdn',
        namespace: 'shop',
        service: 'db',
        addressType: 'FQDN',
        addresses: ['x.example'],
        ports: [],
      },
    ];
    const want = desiredAddresses(services, slices, 'shop');
    assert.deepEqual([...want.keys()].sort(), [
      '10.244.0.5',
      '10.244.1.6',
      '10.96.0.10',
      '10.96.0.20',
      'fd00::20',
    ]);
    assert.deepEqual([...want.get('10.96.0.10')!.ports.keys()].sort(), ['TCP/53', 'UDP/53']);
    assert.deepEqual([...want.get('10.244.0.5')!.ports.keys()].sort(), ['TCP/15432', 'TCP/5432']);
    assert.deepEqual([...want.get('10.244.0.5')!.owners], ['db']);
  });

  it('names Services of other namespaces svc.namespace, and matches slices to the Service of their own namespace', () => {
    const port = [{ name: 'pg', port: 5432, protocol: 'TCP' as const }];
    const services = [
      svc('db', [], port, true, 'shop'),
      svc('db', [], port, true, 'billing'),
      svc('cache', ['10.96.0.30'], port, false, 'billing'),
    ];
    const slices: EndpointSliceInfo[] = [
      {
        name: 'db-1',
        namespace: 'billing',
        service: 'db',
        addressType: 'IPv4',
        addresses: ['10.244.0.9'],
        ports: [],
      },
      {
        name: 'db-2',
        namespace: 'other',
        service: 'db',
        addressType: 'IPv4',
        addresses: ['10.244.0.10'],
        ports: [],
      },
    ];
    const want = desiredAddresses(services, slices, 'shop');
    assert.deepEqual([...want.keys()].sort(), ['10.244.0.9', '10.96.0.30']);
    assert.deepEqual([...want.get('10.244.0.9')!.owners], ['db.billing']);
    assert.deepEqual([...want.get('10.96.0.30')!.owners], ['cache.billing']);
  });
});

describe('alias allocator', () => {
  it('prefers 127.b.c.d, avoids 127.0.x.x and collisions, reuses freed aliases', () => {
    const a = new AliasAllocator();
    assert.equal(a.aliasFor('10.96.0.20'), '127.96.0.20');
    assert.equal(a.aliasFor('10.96.0.20'), '127.96.0.20');
    assert.equal(a.aliasFor('192.96.0.20'), '127.255.0.1');
    assert.equal(a.aliasFor('10.0.0.1'), '127.255.0.2');
    assert.equal(a.aliasFor('fd00::1'), undefined);
    a.release('10.96.0.20');
    assert.equal(a.lookup('10.96.0.20'), undefined);
    assert.equal(a.aliasFor('172.96.0.20'), '127.96.0.20');
  });
});

describe('ip command adder', () => {
  it('runs ip addr add/del on lo, treats existing/missing as done, and EPERM as missing NET_ADMIN', async () => {
    const calls: string[] = [];
    let answer: string | undefined;
    const adder = ipCommandAdder(async (file, args) => {
      calls.push([file, ...args].join(' '));
      if (answer) throw Object.assign(new Error('exit 2'), { stderr: answer });
    });
    await adder.add('10.96.0.20');
    await adder.add('fd00::20');
    await adder.remove('10.96.0.20');
    assert.deepEqual(calls, [
      'ip addr add 10.96.0.20/32 dev lo',
      'ip -6 addr add fd00::20/128 dev lo',
      'ip addr del 10.96.0.20/32 dev lo',
    ]);
    // Messages of busybox and of iproute2 6.x for an address already there / already gone.
    for (answer of ['ip: RTNETLINK answers: File exists', 'Error: ipv4: Address already assigned.']) {
      await adder.add('10.96.0.20');
    }
    for (answer of [
      'ip: RTNETLINK answers: Cannot assign requested address',
      'Error: ipv4: Address not found.',
    ]) {
      await adder.remove('10.96.0.20');
    }
    answer = 'Error: something else entirely';
    await assert.rejects(adder.add('10.96.0.20'), /ip addr add 10.96.0.20 failed/);
    answer = 'RTNETLINK answers: Operation not permitted';
    await assert.rejects(adder.add('10.96.0.20'), AddressPermissionError);
    const missing = ipCommandAdder(undefined, '/nonexistent/ip');
    await assert.rejects(missing.add('10.96.0.20'), (err: Error) => {
      assert.ok(err instanceof AddressPermissionError);
      assert.match(err.message, /no \/nonexistent\/ip command/);
      return true;
    });
  });
});

describe('address manager', () => {
  let manager: AddressManager | undefined;
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    await manager?.close();
    manager = undefined;
    for (const c of cleanups.splice(0)) await c();
  });

  it('adds each ClusterIP, listens on its TCP and UDP ports and forwards through the tunnel', async () => {
    const echo = await tcpEcho();
    const uecho = await udpEcho();
    cleanups.push(echo.close, uecho.close);
    const port = await freePort();
    const link = new LoopbackLink((host, p) => (host === '127.0.0.21' && p === port ? echo.port : undefined));
    const udpLink = new LoopbackLink(() => uecho.port);
    const outbound: Outbound = {
      openTcp: (h, p) => link.openTcp(h, p),
      openUdp: (h, p) => udpLink.openUdp(h, p),
    };
    const adder = new RecordingAdder();
    const stats = newTrafficStats();
    manager = new AddressManager({ adder, outbound, stats, settleMs: 1 });
    manager.setDesired(
      [
        svc(
          'echo',
          ['127.0.0.21'],
          [
            { name: 'tcp', port, protocol: 'TCP' },
            { name: 'udp', port, protocol: 'UDP' },
          ],
        ),
      ],
      [],
    );
    await manager.settled();
    assert.deepEqual([...adder.added], ['127.0.0.21']);
    assert.equal(manager.addressMode, 'direct');
    assert.deepEqual(manager.status()[0]!.listening, [`TCP/${port}`, `UDP/${port}`]);

    assert.deepEqual(await tcpRoundTrip('127.0.0.21', port, 'hello through the tunnel'), {
      reply: 'hello through the tunnel',
    });
    assert.equal(await udpRoundTrip('127.0.0.21', port, 'ping'), 'echo:ping');
    assert.deepEqual(link.opened, [`tcp 127.0.0.21:${port}`]);
    assert.deepEqual(udpLink.opened, [`udp 127.0.0.21:${port}`]);
    await eventually(() => stats.tcpOpen === 0);
    assert.equal(stats.tcpConnections, 1);
    assert.equal(stats.bytesOut, 'hello through the tunnel'.length + 'ping'.length);
    assert.equal(stats.bytesIn, 'hello through the tunnel'.length + 'echo:ping'.length);
  });

  it('resets only the local connection when the target refuses', async () => {
    const echo = await tcpEcho();
    cleanups.push(echo.close);
    const [refused, open] = [await freePort(), await freePort()];
    const link = new LoopbackLink((_h, p) => (p === open ? echo.port : undefined));
    const errors: string[] = [];
    const stats = newTrafficStats();
    manager = new AddressManager({
      adder: new RecordingAdder(),
      outbound: { openTcp: (h, p) => link.openTcp(h, p), openUdp: (h, p) => link.openUdp(h, p) },
      stats,
      settleMs: 1,
      onError: (r) => errors.push(`${r.what}: ${r.error}`),
    });
    manager.setDesired(
      [
        svc('down', ['127.0.0.22'], [{ name: 'a', port: refused, protocol: 'TCP' }]),
        svc('up', ['127.0.0.23'], [{ name: 'b', port: open, protocol: 'TCP' }]),
      ],
      [],
    );
    await manager.settled();
    // A long-lived connection to the healthy service survives the refusal next door.
    const live = net.connect({ host: '127.0.0.23', port: open });
    await new Promise((r) => live.once('connect', r));
    assert.deepEqual(await tcpRoundTrip('127.0.0.22', refused, 'x'), { error: 'ECONNRESET' });
    const echoed = new Promise<string>((resolve) => live.once('data', (d) => resolve(d.toString())));
    live.write('still here');
    assert.equal(await echoed, 'still here');
    live.destroy();
    assert.equal(stats.tcpRefused, 1);
    assert.match(errors.join('\n'), new RegExp(`tcp 127.0.0.22:${refused}: ECONNREFUSED`));
  });

  it('serves headless pod IPs on their endpoint ports and removes addresses that go away', async () => {
    const echo = await tcpEcho();
    cleanups.push(echo.close);
    const [svcPort, targetPort] = [await freePort(), await freePort()];
    const link = new LoopbackLink(() => echo.port);
    const adder = new RecordingAdder();
    manager = new AddressManager({
      adder,
      outbound: { openTcp: (h, p) => link.openTcp(h, p), openUdp: (h, p) => link.openUdp(h, p) },
      stats: newTrafficStats(),
      settleMs: 1,
    });
    const db = svc('db', [], [{ name: 'pg', port: svcPort, protocol: 'TCP' }], true);
    const slice = (addresses: string[]): EndpointSliceInfo => ({
      name: 'db-abc',
      namespace: 'shop',
      service: 'db',
      addressType: 'IPv4',
      addresses,
      ports: [{ name: 'pg', port: targetPort, protocol: 'TCP' }],
    });
    manager.setDesired([db], [slice(['127.0.0.31', '127.0.0.32'])]);
    await manager.settled();
    assert.deepEqual([...adder.added].sort(), ['127.0.0.31', '127.0.0.32']);
    assert.deepEqual(await tcpRoundTrip('127.0.0.32', targetPort, 'db-1'), { reply: 'db-1' });
    assert.deepEqual(link.opened, [`tcp 127.0.0.32:${targetPort}`]);

    manager.setDesired([db], [slice(['127.0.0.31'])]);
    await manager.settled();
    assert.deepEqual([...adder.added], ['127.0.0.31']);
    assert.ok(adder.calls.includes('remove 127.0.0.32'));
    assert.deepEqual(await tcpRoundTrip('127.0.0.32', targetPort, 'gone'), { error: 'ECONNREFUSED' });

    manager.setDesired([], []);
    await manager.settled();
    assert.equal(adder.added.size, 0);
    assert.deepEqual(manager.status(), []);
  });

  it('falls back to 127.x aliases without NET_ADMIN, for DNS answers to point at', async () => {
    const echo = await tcpEcho();
    cleanups.push(echo.close);
    const port = await freePort();
    const link = new LoopbackLink((host) => (host === '10.96.0.20' ? echo.port : undefined));
    const adder = new RecordingAdder(
      () => new AddressPermissionError('RTNETLINK answers: Operation not permitted'),
    );
    manager = new AddressManager({
      adder,
      outbound: { openTcp: (h, p) => link.openTcp(h, p), openUdp: (h, p) => link.openUdp(h, p) },
      stats: newTrafficStats(),
      settleMs: 1,
    });
    manager.setDesired([svc('web', ['10.96.0.20'], [{ name: 'http', port, protocol: 'TCP' }])], []);
    await manager.settled();
    assert.equal(manager.addressMode, 'fallback');
    assert.equal(adder.calls.length, 1, 'asks the kernel once, then stops trying');
    assert.equal(manager.localAddressFor('10.96.0.20'), '127.96.0.20');
    assert.deepEqual(await tcpRoundTrip('127.96.0.20', port, 'via alias'), { reply: 'via alias' });
    assert.deepEqual(link.opened, [`tcp 10.96.0.20:${port}`], 'the agent still dials the real ClusterIP');

    const reply = buildAReply(buildQuery(1, 'web.shop.svc.cluster.local'), ['10.96.0.20']);
    assert.deepEqual(aRecords(rewriteARecords(reply, (ip) => manager!.localAddressFor(ip))), ['127.96.0.20']);
  });

  it('removes every address it added on close', async () => {
    const adder = new RecordingAdder();
    const port = await freePort();
    manager = new AddressManager({
      adder,
      outbound: {
        openTcp: () => Promise.reject(new Error('unused')),
        openUdp: () => Promise.reject(new Error('unused')),
      },
      stats: newTrafficStats(),
      settleMs: 1,
    });
    manager.setDesired([svc('a', ['127.0.0.41', '127.0.0.42'], [{ name: 'x', port, protocol: 'UDP' }])], []);
    await manager.settled();
    assert.equal(adder.added.size, 2);
    await manager.close();
    assert.equal(adder.added.size, 0);
    manager = undefined;
  });

  it('with NAT redirects each destination to its alias on one listener and binds nothing on the Service ports', async () => {
    const echo = await tcpEcho();
    const uecho = await udpEcho();
    cleanups.push(echo.close, uecho.close);
    // The app holds the Service port on the wildcard address: NAT leaves it alone.
    const app = net.createServer((s) => s.end('app'));
    await new Promise<void>((resolve) => app.listen(0, '0.0.0.0', resolve));
    cleanups.push(() => new Promise((r) => app.close(() => r())));
    const port = (app.address() as net.AddressInfo).port;
    const link = new LoopbackLink((host, p) => (host === '10.96.0.20' && p === port ? echo.port : undefined));
    const udpLink = new LoopbackLink(() => uecho.port);
    const nat = new FakeNat();
    const adder = new RecordingAdder();
    manager = new AddressManager({
      adder,
      outbound: { openTcp: (h, p) => link.openTcp(h, p), openUdp: (h, p) => udpLink.openUdp(h, p) },
      stats: newTrafficStats(),
      settleMs: 1,
      nat: nat.open,
      appPorts: [port],
    });
    const web = svc(
      'web',
      ['10.96.0.20'],
      [
        { name: 'http', port, protocol: 'TCP' },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    );
    manager.setDesired([web], []);
    await manager.settled();
    assert.equal(manager.addressMode, 'nat');
    assert.equal(adder.calls.length, 0, 'no address is added');
    assert.notEqual(nat.listenPort, port, 'the listener keeps off the app port');
    const tcp = nat.target('TCP', '10.96.0.20', port);
    const udp = nat.target('UDP', '10.96.0.20', 53);
    assert.ok(tcp && udp && tcp.alias !== udp.alias);
    // Fully redirected addresses are counted, not listed (thousands would make the status megabytes).
    assert.deepEqual(manager.status(), []);
    assert.deepEqual(manager.natInfo(), {
      backend: 'nftables',
      listenPort: nat.listenPort,
      targets: 2,
      addresses: 1,
    });
    // What the kernel delivers after DNAT: a connection to alias:listenPort.
    assert.deepEqual(await tcpRoundTrip(tcp.alias, nat.listenPort!, 'through nat'), { reply: 'through nat' });
    assert.equal(await udpRoundTrip(udp.alias, nat.listenPort!, 'q'), 'echo:q');
    assert.deepEqual(link.opened, [`tcp 10.96.0.20:${port}`]);
    assert.deepEqual(udpLink.opened, ['udp 10.96.0.20:53']);
    assert.deepEqual(await tcpRoundTrip('127.0.0.1', port, ''), { reply: 'app' });

    // Updates are element changes, not reloads.
    manager.setDesired([svc('web', ['10.96.0.20'], [{ name: 'http', port, protocol: 'TCP' }])], []);
    await manager.settled();
    assert.deepEqual(nat.updates.at(-1), { added: [], removed: [`UDP/10.96.0.20/53`] });
    assert.notEqual(
      await udpRoundTrip(udp.alias, nat.listenPort!, 'q', 300),
      'echo:q',
      'its socket is closed',
    );

    await manager.close();
    manager = undefined;
    assert.equal(nat.cleared, true);
    assert.deepEqual(await tcpRoundTrip(tcp.alias, nat.listenPort!, 'x'), { error: 'ECONNREFUSED' });
  });

  it('falls back to binding when NAT cannot be programmed, skipping the ports the app declares or listens on', async () => {
    const [declared, listened, free] = [await freePort(), await freePort(), await freePort()];
    const errors: string[] = [];
    const adder = new RecordingAdder();
    manager = new AddressManager({
      adder,
      outbound: {
        openTcp: () => Promise.reject(new Error('unused')),
        openUdp: () => Promise.reject(new Error('unused')),
      },
      stats: newTrafficStats(),
      settleMs: 1,
      nat: async () => {
        throw new Error('nft: Error: Could not process rule: No such file or directory');
      },
      appPorts: [declared],
      listeningPorts: () => new Set([`TCP/${listened}`]),
      onError: (r) => errors.push(`${r.what}: ${r.error}`),
    });
    manager.setDesired(
      [
        svc(
          'a',
          ['127.0.0.51'],
          [
            { name: 'x', port: declared, protocol: 'TCP' },
            { name: 'y', port: listened, protocol: 'TCP' },
            { name: 'z', port: free, protocol: 'TCP' },
          ],
        ),
      ],
      [],
    );
    await manager.settled();
    assert.equal(manager.addressMode, 'direct');
    assert.match(errors.join('\n'), /nat: .*No such file or directory/);
    const [status] = manager.status();
    assert.deepEqual(status!.listening, [`TCP/${free}`]);
    assert.equal(
      status!.error,
      `TCP/${declared} not served: the app declares port ${declared}; TCP/${listened} not served: the app listens on TCP/${listened}`,
    );
  });
});

/** A NAT table that records what it was told, for the manager tests (the real one is tested in a container). */
class FakeNat {
  listenPort: number | undefined;
  readonly current = new Map<string, NatTarget>();
  readonly updates: { added: string[]; removed: string[] }[] = [];
  cleared = false;
  readonly open: NatOpener = async (listenPort) => {
    this.listenPort = listenPort;
    const key = (t: NatTarget) => `${t.protocol}/${t.ip}/${t.port}`;
    const table: NatTable = {
      backend: 'nftables',
      update: async (added, removed) => {
        this.updates.push({ added: added.map(key), removed: removed.map(key) });
        for (const t of removed) this.current.delete(key(t));
        for (const t of added) this.current.set(key(t), t);
      },
      clear: async () => {
        this.cleared = true;
        this.current.clear();
      },
    };
    return table;
  };

  target(protocol: string, ip: string, port: number): NatTarget | undefined {
    return this.current.get(`${protocol}/${ip}/${port}`);
  }
}
