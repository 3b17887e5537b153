/**
 * Runs inside a throwaway container (its own network namespace): the sidecar
 * with the real `nft` and `ip` commands, a fake API server and an in-process
 * tunnel that routes every target to local echo servers. Once the sidecar is
 * ready, an "app" listens on the Service ports given as the first argument
 * (JSON: `{nat, appPorts}`), as an app started after the sidecar would. Prints
 * one JSON line describing what it saw, for addresses.test.ts to check.
 */
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { parseSidecarConfig } from '../../../src/sidecar/config.js';
import { startSidecar } from '../../../src/sidecar/sidecar.js';
import { aRecords, buildAReply, buildQuery } from '../../support/dns.js';
import {
  eventually,
  FakeDialer,
  FakeKube,
  tcpEcho,
  tcpRoundTrip,
  udpEcho,
  udpRoundTrip,
} from '../../unit/sidecar/fakes.js';

const loAddresses = () =>
  execFileSync('ip', ['-o', '-4', 'addr', 'show', 'dev', 'lo'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /inet (\S+)/.exec(l)?.[1])
    .filter((a): a is string => Boolean(a))
    .sort();

function dnsAsk(port: number, name: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => reject(new Error('no DNS answer')), 3000);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(aRecords(msg));
    });
    socket.send(buildQuery(1, name), port, '127.0.0.1');
  });
}

function nftRuleset(): string {
  try {
    return execFileSync('nft', ['list', 'ruleset'], { encoding: 'utf8' }).trim();
  } catch (err) {
    return `unavailable: ${(err as Error).message.split('\n')[0]}`;
  }
}

/** Listens like an app on 0.0.0.0:port; the error code when the port is taken. */
async function appListen(port: number, reply: string): Promise<{ server?: net.Server; error?: string }> {
  const server = net.createServer((s) => s.end(reply));
  return new Promise((resolve) => {
    server.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code }));
    server.listen({ host: '0.0.0.0', port }, () => resolve({ server }));
  });
}

async function main(): Promise<void> {
  const args = JSON.parse(process.argv[2] ?? '{}') as { nat?: 'auto' | 'off'; appPorts?: number[] };
  const kube = await new FakeKube().start();
  const echo = await tcpEcho();
  const uecho = await udpEcho();
  kube.put('/api/v1/namespaces/shop/pods', {
    metadata: { name: 'api-0', labels: { app: 'api' } },
    spec: { containers: [{ name: 'app' }, { name: 'devbox-agent' }] },
    status: {
      phase: 'Running',
      podIP: '10.244.0.9',
      conditions: [{ type: 'Ready', status: 'True' }],
      containerStatuses: [{ name: 'devbox-agent', ready: true }],
    },
  });
  kube.put('/api/v1/namespaces/shop/services', {
    metadata: { name: 'web' },
    spec: {
      clusterIP: '10.96.0.20',
      ports: [
        { port: 80, protocol: 'TCP' },
        { port: 5353, protocol: 'UDP' },
      ],
    },
  });
  kube.put('/api/v1/namespaces/shop/services', {
    metadata: { name: 'db' },
    spec: { clusterIP: 'None', ports: [{ port: 5432, protocol: 'TCP' }] },
  });
  kube.put('/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices', {
    metadata: { name: 'db-1', labels: { 'kubernetes.io/service-name': 'db' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.244.1.5'] }],
    ports: [{ port: 5432, protocol: 'TCP' }],
  });
  // The "cluster" behind the tunnel: TCP targets reach the TCP echo, UDP the UDP echo; DNS answers the ClusterIP.
  const dialer = new FakeDialer(
    (_host, port) => (port === 5353 ? uecho.port : echo.port),
    async (q) => buildAReply(q, ['10.96.0.20']),
  );
  const before = loAddresses();
  const sidecar = await startSidecar(
    parseSidecarConfig({
      apiServer: kube.url,
      token: 'test-token',
      namespace: 'shop',
      agentSelector: 'app=api',
      sessionToken: 's',
      agentTunnelPort: 9901,
      statusPort: 0,
      dnsPort: 0,
      nat: args.nat ?? 'auto',
      appPorts: args.appPorts ?? [],
      kubernetesService: '10.96.0.1:443',
    }),
    { dialer: dialer.dial },
  );
  await eventually(
    () =>
      sidecar.status().addressMode === 'nat'
        ? sidecar.status().nat?.addresses === 3 && sidecar.status().addresses.length === 0
        : sidecar.status().addresses.length === 3 &&
          sidecar.status().addresses.every((a) => a.listening.length || a.error),
    10_000,
    'addresses',
  );
  await eventually(() => sidecar.status().tunnels[0]?.state === 'up', 10_000, 'tunnel');
  const status = sidecar.status();
  const local = (ip: string) => status.addresses.find((a) => a.ip === ip)?.local ?? ip;
  const during = loAddresses();
  const rulesDuring = nftRuleset();
  const app: Record<number, string> = {};
  const appServers: net.Server[] = [];
  for (const port of args.appPorts ?? []) {
    const held = await appListen(port, `app:${port}`);
    app[port] = held.error ?? 'listening';
    if (held.server) appServers.push(held.server);
  }
  const result = {
    mode: status.addressMode,
    nat: status.nat,
    before,
    during,
    rulesDuring,
    app,
    appReply: Object.fromEntries(
      await Promise.all((args.appPorts ?? []).map(async (p) => [p, await tcpRoundTrip('127.0.0.1', p, '')])),
    ),
    api: await tcpRoundTrip(local('10.96.0.1'), 443, 'api'),
    addresses: status.addresses,
    web: await tcpRoundTrip(local('10.96.0.20'), 80, 'web'),
    webUdp: await udpRoundTrip(local('10.96.0.20'), 5353, 'udp'),
    db: await tcpRoundTrip(local('10.244.1.5'), 5432, 'db'),
    dns: await dnsAsk(sidecar.dnsPort, 'web.shop.svc.cluster.local'),
    errors: status.lastErrors,
    after: [] as string[],
    rulesAfter: '',
  };
  for (const server of appServers) server.close();
  await sidecar.close();
  result.after = loAddresses();
  result.rulesAfter = nftRuleset();
  process.stdout.write(`${JSON.stringify(result)}\n`);
  await kube.stop();
  await echo.close();
  await uecho.close();
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
