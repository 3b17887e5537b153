/**
 * The whole sidecar on loopback: a fake API server feeds it pods and Services,
 * a real agent (tunnel server) answers its tunnels over plain TCP instead of a
 * port-forward, and a fake upstream resolver stands in for cluster DNS.
 * Fallback mode keeps the test free of NET_ADMIN and lets the agent dial the
 * "ClusterIP" 127.0.0.1 while the sidecar listens on its 127.255.x alias.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type RunningAgent, startAgent } from '../../../src/agent/agent.js';
import { AGENT_DEFAULTS, type AgentConfig } from '../../../src/agent/config.js';
import { linkFromClient } from '../../../src/sidecar/agent-dialer.js';
import { parseSidecarConfig, type SidecarConfig } from '../../../src/sidecar/config.js';
import {
  apiHostWarning,
  type RunningSidecar,
  type SidecarStatus,
  startSidecar,
} from '../../../src/sidecar/sidecar.js';
import type { TunnelDialer } from '../../../src/sidecar/tunnel-link.js';
import { TunnelClient } from '../../../src/tunnel/index.js';
import { aRecords, buildAReply, buildQuery, decodeDns, questionOf } from '../../support/dns.js';
import {
  eventually,
  FakeKube,
  RecordingAdder,
  tcpEcho,
  tcpRoundTrip,
  udpEcho,
  udpRoundTrip,
} from './fakes.js';

const NS = 'shop';
const TOKEN = 'session-secret';

function dnsAsk(port: number, query: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error('no DNS answer'));
    }, 5000);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg);
    });
    socket.send(query, port, '127.0.0.1');
  });
}

/** Upstream "cluster DNS": every name resolves to 127.0.0.1, except `web.*` to the web ClusterIP. */
async function fakeClusterDns(): Promise<{ port: number; names: string[]; close: () => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  const names: string[] = [];
  socket.on('message', (msg, rinfo) => {
    const name = questionOf(msg)?.name ?? '';
    names.push(name);
    socket.send(buildAReply(msg, ['127.0.0.1']), rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, names, close: () => new Promise((r) => socket.close(() => r())) };
}

async function getStatus(port: number): Promise<SidecarStatus> {
  const res = await fetch(`http://127.0.0.1:${port}/status`);
  assert.equal(res.status, 200);
  return (await res.json()) as SidecarStatus;
}

describe('sidecar on loopback with a real agent', () => {
  let kube: FakeKube;
  let agent: RunningAgent;
  let dir: string;
  let sidecar: RunningSidecar;
  let upstream: Awaited<ReturnType<typeof fakeClusterDns>>;
  let echo: Awaited<ReturnType<typeof tcpEcho>>;
  let uecho: Awaited<ReturnType<typeof udpEcho>>;
  let localApp: net.Server;
  let localAppPort: number;
  const tunnelSockets: net.Socket[] = [];
  const adder = new RecordingAdder();

  before(async () => {
    kube = await new FakeKube().start();
    // Namespace by namespace, as with the discovery ClusterRole bound in some namespaces only.
    kube.forbidAcrossNamespaces = true;
    upstream = await fakeClusterDns();
    echo = await tcpEcho();
    uecho = await udpEcho();
    // The developer's app: answers with a prefix so that intercepted traffic is recognisable.
    localApp = net.createServer((s) => {
      s.on('error', () => {});
      s.on('data', (d) => s.end(`local:${d}`));
    });
    await new Promise<void>((r) => localApp.listen(0, '127.0.0.1', r));
    localAppPort = (localApp.address() as net.AddressInfo).port;

    dir = mkdtempSync(join(tmpdir(), 'devbox-sidecar-'));
    writeFileSync(
      join(dir, 'resolv.conf'),
      `nameserver 127.0.0.1:${upstream.port}\noptions timeout:1 attempts:1\n`,
    );
    const agentConfig: AgentConfig = {
      ...AGENT_DEFAULTS,
      token: TOKEN,
      tunnelPort: 0,
      // The in-pod app port is 8080 (nothing listens there here); the Service targetPort moved to the agent.
      intercepts: [{ listenPort: 0, appPort: 8080 }],
      interceptHost: '127.0.0.1',
      // The test's Services are loopback servers.
      dialLocalTargets: true,
      resolvConfPath: join(dir, 'resolv.conf'),
    };
    agent = await startAgent(agentConfig);

    const dialer: TunnelDialer = async (_target, onInbound, signal) => {
      const socket = net.connect(agent.tunnelPort, '127.0.0.1');
      await new Promise((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('error', reject);
      });
      tunnelSockets.push(socket);
      const client = await TunnelClient.connect(socket, { token: TOKEN, signal });
      return linkFromClient(client, onInbound);
    };

    const config: SidecarConfig = parseSidecarConfig({
      apiServer: kube.url,
      token: 'test-token',
      namespace: NS,
      agentSelector: 'app=api',
      sessionToken: TOKEN,
      agentTunnelPort: 9901,
      interceptPorts: [{ port: 8080, appPort: localAppPort }],
      statusPort: 0,
      dnsPort: 0,
      forceFallback: true,
    });
    sidecar = await startSidecar(config, { dialer, adder, nat: false });
    // The fake replays no events from a resourceVersion: changes count only once all three watch.
    await eventually(() => kube.watcherCount === 3, 5000, 'the sidecar watching pods, Services and slices');
  });

  after(async () => {
    await sidecar?.close();
    await agent?.close();
    await kube.stop();
    await upstream.close();
    await echo.close();
    await uecho.close();
    await new Promise((r) => localApp.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers SERVFAIL while no agent pod is ready, and reports it', async () => {
    const reply = await dnsAsk(sidecar.dnsPort, buildQuery(1, 'inventory.shop.svc.cluster.local'));
    assert.equal(decodeDns(reply).rcode, 'SERVFAIL');
    const health = await fetch(`http://127.0.0.1:${sidecar.statusPort}/healthz`);
    assert.equal(health.status, 503);
    assert.equal(upstream.names.length, 0);
  });

  it('opens a tunnel to the ready agent pod and relays DNS through it', async () => {
    kube.put(`/api/v1/namespaces/${NS}/pods`, {
      metadata: { name: 'api-7d9f-x', labels: { app: 'api' } },
      spec: { containers: [{ name: 'app' }, { name: 'devbox-agent' }] },
      status: {
        phase: 'Running',
        podIP: '10.244.0.12',
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: [{ name: 'devbox-agent', ready: true }],
      },
    });
    await eventually(() => sidecar.status().tunnels[0]?.state === 'up', 5000, 'tunnel up');
    const reply = await dnsAsk(sidecar.dnsPort, buildQuery(2, 'inventory.shop.svc.cluster.local'));
    assert.equal(decodeDns(reply).rcode, 'NOERROR');
    assert.deepEqual(aRecords(reply), ['127.0.0.1']);
    assert.deepEqual(upstream.names, ['inventory.shop.svc.cluster.local']);
  });

  it('listens on the Services of another namespace before answering a name in it', async () => {
    kube.put('/api/v1/namespaces/billing/services', {
      metadata: { name: 'cache' },
      spec: { type: 'ClusterIP', clusterIP: '127.0.0.9', clusterIPs: ['127.0.0.9'], ports: [{ port: 6379 }] },
    });
    const reply = await dnsAsk(sidecar.dnsPort, buildQuery(3, 'cache.billing.svc.cluster.local'));
    assert.equal(decodeDns(reply).rcode, 'NOERROR');
    // No waiting: the answer went out once the Service was listened on.
    const cache = sidecar.status().addresses.find((a) => a.ip === '127.0.0.9');
    assert.deepEqual(cache?.owners, ['cache.billing']);
    assert.deepEqual(cache?.listening, ['TCP/6379']);
    assert.deepEqual(sidecar.status().otherNamespaces, { billing: 'listening' });
    await eventually(() => kube.watching('/api/v1/namespaces/billing/services'), 5000, 'billing watched');
    kube.delete('/api/v1/namespaces/billing/services', 'cache');
    await eventually(
      () => sidecar.status().addresses.length === 0,
      5000,
      'the address removed with the Service',
    );
  });

  it('answers a name in a namespace it may not read at once, and reports the namespace', async () => {
    kube.forbiddenNamespaces.add('vault');
    const started = Date.now();
    const reply = await dnsAsk(sidecar.dnsPort, buildQuery(4, 'secrets.vault.svc.cluster.local'));
    assert.equal(decodeDns(reply).rcode, 'NOERROR');
    assert.ok(Date.now() - started < 1_000, `answered after ${Date.now() - started} ms`);
    assert.equal(sidecar.status().otherNamespaces.vault, 'unreadable');
    assert.ok(sidecar.status().lastErrors.some((e) => /vault/.test(e.error)));
    // Names of the own namespace start nothing.
    await dnsAsk(sidecar.dnsPort, buildQuery(5, 'inventory.shop.svc.cluster.local'));
    assert.deepEqual(Object.keys(sidecar.status().otherNamespaces).sort(), ['billing', 'vault']);
  });

  it('listens on the Services of more namespaces than it has API connections for requests', async () => {
    // Each namespace keeps two watches open for minutes; the API connections of requests are few.
    const namespaces = Array.from({ length: 12 }, (_, i) => `team-${i}`);
    for (const [i, ns] of namespaces.entries()) {
      kube.put(`/api/v1/namespaces/${ns}/services`, {
        metadata: { name: 'db' },
        spec: { clusterIP: `127.0.1.${i + 1}`, ports: [{ port: 5432, protocol: 'TCP' }] },
      });
    }
    for (const [i, ns] of namespaces.entries()) {
      const started = Date.now();
      await dnsAsk(sidecar.dnsPort, buildQuery(20 + i, `db.${ns}.svc.cluster.local`));
      const db = sidecar.status().addresses.find((a) => a.ip === `127.0.1.${i + 1}`);
      assert.deepEqual(db?.listening, ['TCP/5432'], `db.${ns} listened on when answered`);
      assert.ok(Date.now() - started < 1_000, `db.${ns} answered after ${Date.now() - started} ms`);
    }
    for (const ns of namespaces) assert.equal(sidecar.status().otherNamespaces[ns], 'listening');
    const watched = () => namespaces.every((ns) => kube.watching(`/api/v1/namespaces/${ns}/services`));
    await eventually(watched, 5000, 'their Services watched');
    for (const ns of namespaces) kube.delete(`/api/v1/namespaces/${ns}/services`, 'db');
    await eventually(() => sidecar.status().addresses.length === 0, 5000, 'their addresses removed');
  });

  it('serves a Service on its fallback alias, through the agent, and rewrites DNS answers to it', async () => {
    kube.put(`/api/v1/namespaces/${NS}/services`, {
      metadata: { name: 'echo' },
      spec: {
        type: 'ClusterIP',
        clusterIP: '127.0.0.1',
        clusterIPs: ['127.0.0.1'],
        ports: [
          { name: 'tcp', port: echo.port, protocol: 'TCP' },
          { name: 'udp', port: uecho.port, protocol: 'UDP' },
        ],
      },
    });
    await eventually(() => sidecar.status().addresses[0]?.listening.length === 2, 5000, 'listeners');
    const alias = sidecar.status().addresses[0]!.local!;
    assert.match(alias, /^127\.255\./);
    assert.equal(sidecar.status().addressMode, 'fallback');
    assert.deepEqual(adder.calls, [], 'no ip command in forced fallback');

    const reply = await dnsAsk(sidecar.dnsPort, buildQuery(3, 'echo.shop.svc.cluster.local'));
    assert.deepEqual(aRecords(reply), [alias], 'DNS points at the alias');
    assert.deepEqual(await tcpRoundTrip(alias, echo.port, 'over the real tunnel'), {
      reply: 'over the real tunnel',
    });
    assert.equal(await udpRoundTrip(alias, uecho.port, 'dgram'), 'echo:dgram');
  });

  it('resets the local connection when the agent cannot reach the target', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const s = net.createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
    kube.put(`/api/v1/namespaces/${NS}/services`, {
      metadata: { name: 'dead' },
      spec: { clusterIP: '127.0.0.2', ports: [{ port: closedPort, protocol: 'TCP' }] },
    });
    await eventually(() =>
      sidecar.status().addresses.some((a) => a.ip === '127.0.0.2' && a.listening.length === 1),
    );
    const alias = sidecar.status().addresses.find((a) => a.ip === '127.0.0.2')!.local!;
    assert.deepEqual(await tcpRoundTrip(alias, closedPort, 'x'), { error: 'ECONNRESET' });
    const status = sidecar.status();
    assert.equal(status.outbound.tcpRefused, 1);
    assert.ok(status.lastErrors.some((e) => /ECONNREFUSED|refused/.test(e.error)));
  });

  it('hands intercepted connections to the local app', async () => {
    const interceptPort = agent.intercepts[0]!.listenPort;
    await eventually(() => agent.stats().open.acceptPending > 0, 5000, 'accept pool');
    assert.deepEqual(await tcpRoundTrip('127.0.0.1', interceptPort, 'from the cluster'), {
      reply: 'local:from the cluster',
    });
    await eventually(() => sidecar.status().inbound.accepted === 1 && sidecar.status().inbound.open === 0);
  });

  it('reports everything as JSON on the status endpoint', async () => {
    const status = await getStatus(sidecar.statusPort);
    assert.equal(status.namespace, NS);
    assert.equal(status.tunnels.length, 1);
    assert.equal(status.tunnels[0]!.pod, 'api-7d9f-x');
    assert.equal(status.tunnels[0]!.state, 'up');
    assert.ok(status.dns.queries >= 3);
    assert.equal(status.dns.errors, 1);
    assert.ok(status.outbound.bytesOut > 0 && status.outbound.bytesIn > 0);
    assert.ok(status.inbound.bytesIn > 0);
    assert.ok(status.rssBytes > 0);
    assert.equal(status.watches.pods!.synced, true);
    const agentStats = status.agents?.['api-7d9f-x'] as {
      totals: { intercepted: number; dnsQueries: number };
    };
    assert.equal(agentStats.totals.intercepted, 1);
    assert.ok(agentStats.totals.dnsQueries >= 2);
    const health = await fetch(`http://127.0.0.1:${sidecar.statusPort}/healthz`);
    assert.equal(health.status, 200);
  });

  it('reconnects when the tunnel connection drops', async () => {
    tunnelSockets.at(-1)!.destroy();
    await eventually(() => sidecar.status().tunnels[0]!.reconnects === 1, 5000, 'reconnect noticed');
    await eventually(() => sidecar.status().tunnels[0]!.state === 'up', 5000, 'back up');
    const alias = sidecar.status().addresses.find((a) => a.ip === '127.0.0.1')!.local!;
    assert.deepEqual(await tcpRoundTrip(alias, echo.port, 'again'), { reply: 'again' });
  });

  it('follows the agent pod going away', async () => {
    kube.delete(`/api/v1/namespaces/${NS}/pods`, 'api-7d9f-x');
    await eventually(() => sidecar.status().tunnels.length === 0, 5000, 'tunnel closed');
    const reply = await dnsAsk(sidecar.dnsPort, buildQuery(9, 'x.shop'));
    assert.equal(decodeDns(reply).rcode, 'SERVFAIL');
  });

  it('closes listeners and status endpoint on shutdown', async () => {
    const alias = sidecar.status().addresses.find((a) => a.ip === '127.0.0.1')!.local!;
    await sidecar.close();
    assert.deepEqual(await tcpRoundTrip(alias, echo.port, 'x'), { error: 'ECONNREFUSED' });
    await assert.rejects(fetch(`http://127.0.0.1:${sidecar.statusPort}/status`));
  });
});

describe('sidecar with NET_ADMIN', () => {
  it('adds ClusterIPs to lo and removes them on shutdown', async () => {
    const kube = await new FakeKube().start();
    const adder = new RecordingAdder();
    kube.put(`/api/v1/namespaces/${NS}/services`, {
      metadata: { name: 'web' },
      spec: { clusterIP: '127.0.0.71', ports: [{ port: 18080, protocol: 'TCP' }] },
    });
    kube.put(`/api/v1/namespaces/${NS}/services`, {
      metadata: { name: 'db' },
      spec: { clusterIP: 'None', ports: [{ port: 15432, protocol: 'TCP' }] },
    });
    kube.put(`/apis/discovery.k8s.io/v1/namespaces/${NS}/endpointslices`, {
      metadata: { name: 'db-1', labels: { 'kubernetes.io/service-name': 'db' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['127.0.0.72'] }],
      ports: [{ port: 15432, protocol: 'TCP' }],
    });
    const sidecar = await startSidecar(
      parseSidecarConfig({
        apiServer: kube.url,
        token: 'test-token',
        namespace: NS,
        agentSelector: 'app=api',
        sessionToken: TOKEN,
        agentTunnelPort: 9901,
        statusPort: 0,
        dnsPort: 0,
      }),
      // Never the host's own tables: NAT is tested in a container (test/integration/sidecar).
      { dialer: async () => Promise.reject(new Error('unused')), adder, nat: false },
    );
    try {
      await eventually(() => adder.added.size === 2, 5000, 'addresses added');
      await eventually(() => sidecar.status().addresses.every((a) => a.listening.length === 1));
      assert.equal(sidecar.status().addressMode, 'direct');
      assert.deepEqual([...adder.added].sort(), ['127.0.0.71', '127.0.0.72']);
    } finally {
      await sidecar.close();
      await kube.stop();
    }
    assert.equal(adder.added.size, 0);
    assert.deepEqual(adder.calls.filter((c) => c.startsWith('remove')).sort(), [
      'remove 127.0.0.71',
      'remove 127.0.0.72',
    ]);
  });
});

describe('API server name check', () => {
  it('warns when the API server name could only be resolved through the sidecar DNS', () => {
    const hosts = '127.0.0.1 localhost\n172.17.0.1 host.docker.internal # added by docker\n';
    assert.equal(apiHostWarning('https://10.0.0.1:6443', hosts), undefined);
    assert.equal(apiHostWarning('https://[fd00::1]:6443', hosts), undefined);
    assert.equal(apiHostWarning('https://host.docker.internal:6443', hosts), undefined);
    assert.match(
      apiHostWarning('https://abc.gr7.eks.amazonaws.com', hosts) ?? '',
      /abc.gr7.eks.amazonaws.com is not in \/etc\/hosts.*tlsServerName/,
    );
  });
});
