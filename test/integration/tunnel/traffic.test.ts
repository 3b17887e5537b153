/**
 * Traffic through the tunnel on the real cluster: the local container reaches
 * Services by name and ClusterIP over TCP and UDP, in-cluster clients of the
 * workload's Service are answered by the local container, and large responses
 * arrive whole in both directions (the "large responses hang" complaint).
 * Docker containers cannot reach cluster addresses on this test bed except
 * through devbox, so every answer here crossed the tunnel.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { apply, kubectl, nodePodManifest, testNamespace } from '../../support/cluster.js';
import {
  APP_SERVER,
  BYTES_PORT,
  clusterIP,
  ECHO_PORT,
  expectedBytesDigest,
  startWorld,
  type World,
} from './fixture.js';
import { DOWNLOAD_PROBE, SILENT_CLOSE_PROBE, TCP_ECHO_PROBE, UDP_ECHO_PROBE, WHERE_PROBE } from './probes.js';

const LARGE = 64 * 1024 * 1024;
const LARGE_LIMIT_MS = 60_000;

describe('traffic through the tunnel', { timeout: 400_000 }, () => {
  let world: World;
  let echoIP: string;
  let largeDigest: string;

  before(async () => {
    world = await startWorld('tnl-traffic', 'tnl-traffic');
    echoIP = await clusterIP(world.ns, 'echo');
    largeDigest = expectedBytesDigest(LARGE);
  });

  after(async () => {
    await world?.teardown();
  });

  const tcpEcho = async (host: string, port: number, message: string) =>
    JSON.parse(await world.local(TCP_ECHO_PROBE, [host, String(port), message])) as {
      address: string;
      echoed: string;
    };

  it('reaches a Service over TCP by name', async () => {
    const message = `by name ${'x'.repeat(100_000)}`;
    const result = await tcpEcho('echo', ECHO_PORT, message);
    assert.equal(result.address, echoIP);
    assert.equal(result.echoed.length, message.length);
    assert.equal(result.echoed, message);
  });

  it('reaches a Service over TCP by its ClusterIP', async () => {
    const result = await tcpEcho(echoIP, ECHO_PORT, 'by cluster IP');
    assert.deepEqual(result, { address: echoIP, echoed: 'by cluster IP' });
  });

  it('reaches a StatefulSet pod by its headless name and pod IP', async () => {
    const podIP = (
      await kubectl(['-n', world.ns, 'get', 'pod', 'db-0', '-o', 'jsonpath={.status.podIP}'])
    ).trim();
    assert.deepEqual(await tcpEcho('db-0.db', 5432, ''), { address: podIP, echoed: 'db ready\n' });
  });

  it('exchanges UDP datagrams with a UDP Service by name and by ClusterIP', async () => {
    for (const host of ['echo', echoIP]) {
      const out = await world.local(UDP_ECHO_PROBE, [host, String(ECHO_PORT), `ping via ${host}`]);
      assert.deepEqual(JSON.parse(out), { reply: `echo:ping via ${host}` }, host);
    }
  });

  it('reaches a Service of another namespace by name once its sidecar may read there, and says when it may not', async () => {
    const other = await testNamespace('tnl-other');
    const binding = `devbox-sidecar-discovery-${world.ns}`;
    try {
      const pod = {
        name: 'echo',
        namespace: other.name,
        app: 'echo',
        script: APP_SERVER,
        args: ['echo'],
        readyPort: ECHO_PORT,
      };
      await apply(`${nodePodManifest(pod)}
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: ${other.name} }
spec:
  selector: { app: echo }
  ports: [{ name: tcp, port: ${ECHO_PORT} }]
`);
      await kubectl(['-n', other.name, 'wait', '--for=condition=Ready', 'pod/echo', '--timeout=120s'], {
        timeoutMs: 130_000,
      });
      const name = `echo.${other.name}`;
      const lookup = `require('node:dns').promises.lookup(process.argv[1]).then((r) => console.log(r.address))`;
      const otherIP = await clusterIP(other.name, 'echo');
      // The sidecar's Role is namespaced: the name resolves, the namespace is reported unreadable.
      assert.equal((await world.local(lookup, [name])).trim(), otherIP);
      assert.equal((await world.sidecarStatus()).otherNamespaces[other.name], 'unreadable');
      // What an administrator does (templates/rbac/devbox-sidecar-discovery.yaml).
      await kubectl(['apply', '-f', 'templates/rbac/devbox-sidecar-discovery.yaml']);
      await kubectl([
        'create',
        'rolebinding',
        binding,
        '-n',
        other.name,
        '--clusterrole=devbox-sidecar-discovery',
        `--serviceaccount=${world.ns}:devbox-sidecar`,
      ]);
      const deadline = Date.now() + 60_000;
      while ((await world.sidecarStatus()).otherNamespaces[other.name] !== 'listening') {
        assert.ok(Date.now() < deadline, 'the sidecar did not pick up the new permission within 60 s');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      assert.deepEqual(await tcpEcho(name, ECHO_PORT, 'across namespaces'), {
        address: otherIP,
        echoed: 'across namespaces',
      });
    } finally {
      await other.remove();
    }
  });

  it("answers an in-cluster client's requests to the workload's Service from the local container", async () => {
    const out = await world.inPod(WHERE_PROBE, [`http://${world.app}/`, '20']);
    assert.deepEqual(JSON.parse(out).answers, Array(20).fill('local'));
  });

  // Regression: an inbound stream whose END_STREAM arrived before the local connection was up never
  // passed the end on, so such connections (TCP health checks among them) stayed open for good.
  it('closes connections that send nothing, both ways, as the pod does, and keeps no stream open', async () => {
    for (const how of ['end', 'destroy']) {
      const args = (host: string, port: number) => [host, String(port), '20', how];
      const closed = async (run: Promise<string>) => (JSON.parse(await run) as { closed: number }).closed;
      const inbound = {
        toPodApp: await closed(world.inPod(SILENT_CLOSE_PROBE, args('echo', 80))),
        toLocalApp: await closed(world.inPod(SILENT_CLOSE_PROBE, args(world.app, 80))),
      };
      assert.deepEqual({ how, ...inbound }, { how, toPodApp: 20, toLocalApp: 20 });
      const outbound = await closed(world.local(SILENT_CLOSE_PROBE, args('echo', ECHO_PORT)));
      assert.deepEqual({ how, outbound }, { how, outbound: 20 });
    }
    // The agent's own TCP readiness probe goes the same way every 2 s: wait for a quiet moment.
    let open: unknown;
    for (let i = 0; i < 20; i++) {
      const status = await world.sidecarStatus();
      open = { streams: status.streamsOpen, inbound: status.inbound.open, outbound: status.outbound.tcpOpen };
      if (status.streamsOpen + status.inbound.open + status.outbound.tcpOpen === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.deepEqual(open, { streams: 0, inbound: 0, outbound: 0 });
  });

  it(`carries a ${LARGE >> 20} MB response from a cluster Service to the local container intact`, async (t) => {
    const out = await world.local(
      DOWNLOAD_PROBE,
      [`http://echo:${BYTES_PORT}/bytes?n=${LARGE}`, String(LARGE_LIMIT_MS)],
      LARGE_LIMIT_MS + 10_000,
    );
    const result = JSON.parse(out) as Download;
    t.diagnostic(`outbound ${LARGE >> 20} MB in ${result.ms} ms (${mbps(LARGE, result.ms)} Mbit/s)`);
    assert.deepEqual(
      { status: result.status, where: result.where, bytes: result.bytes, sha256: result.sha256 },
      { status: 200, where: 'pod', bytes: LARGE, sha256: largeDigest },
    );
  });

  it(`carries a ${LARGE >> 20} MB response from the local container to an in-cluster client intact`, async (t) => {
    const out = await world.inPod(
      DOWNLOAD_PROBE,
      [`http://${world.app}/bytes?n=${LARGE}`, String(LARGE_LIMIT_MS)],
      LARGE_LIMIT_MS + 10_000,
    );
    const result = JSON.parse(out) as Download;
    t.diagnostic(`inbound ${LARGE >> 20} MB in ${result.ms} ms (${mbps(LARGE, result.ms)} Mbit/s)`);
    assert.deepEqual(
      { status: result.status, where: result.where, bytes: result.bytes, sha256: result.sha256 },
      { status: 200, where: 'local', bytes: LARGE, sha256: largeDigest },
    );
  });
});

interface Download {
  status: number;
  where: string;
  bytes: number;
  sha256: string;
  ms: number;
}

function mbps(bytes: number, ms: number): string {
  return ((bytes * 8) / (ms * 1000)).toFixed(0);
}
