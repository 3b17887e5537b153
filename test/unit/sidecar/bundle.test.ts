/**
 * The bundled daemon as it runs in its container: `node sidecar.mjs` configured
 * by env, against a fake API server on loopback. Guards the size and memory
 * budget (the sidecar must not drag in a full Kubernetes client) and the
 * SIGTERM path.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startAgent } from '../../../src/agent/agent.js';
import { AGENT_DEFAULTS } from '../../../src/agent/config.js';
import type { SidecarStatus } from '../../../src/sidecar/sidecar.js';
import { eventually, FakeKube, tcpEcho, tcpRoundTrip } from './fakes.js';

const bundle = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bundle', 'sidecar.mjs');
const MAX_BUNDLE_BYTES = 512 * 1024;
const MAX_IDLE_RSS = 80 * 1024 * 1024;

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('sidecar bundle', () => {
  it('exists and stays small', () => {
    assert.ok(existsSync(bundle), `${bundle} is missing: run npm run build`);
    const size = statSync(bundle).size;
    assert.ok(size < MAX_BUNDLE_BYTES, `sidecar bundle is ${size} bytes, budget ${MAX_BUNDLE_BYTES}`);
  });

  it('runs from env config, reports status, stays under its memory budget and exits cleanly on SIGTERM', async () => {
    const kube = await new FakeKube().start();
    kube.put('/api/v1/namespaces/shop/services', {
      metadata: { name: 'web' },
      spec: { clusterIP: '10.96.0.20', ports: [{ port: 80, protocol: 'TCP' }] },
    });
    const statusPort = await freePort();
    const env = {
      PATH: process.env.PATH,
      DEVBOX_API_SERVER: kube.url,
      DEVBOX_TOKEN: 'test-token',
      DEVBOX_NAMESPACE: 'shop',
      DEVBOX_AGENT_SELECTOR: 'app=api',
      DEVBOX_SESSION_TOKEN: 's',
      DEVBOX_AGENT_TUNNEL_PORT: '9901',
      DEVBOX_STATUS_PORT: String(statusPort),
      DEVBOX_DNS_PORT: '0',
      // Never touch this machine's lo: aliases only.
      DEVBOX_FORCE_FALLBACK: 'true',
    };
    const child = spawn(process.execPath, [bundle], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      let status: SidecarStatus | undefined;
      await eventually(
        async () => {
          const res = await fetch(`http://127.0.0.1:${statusPort}/status`).catch(() => undefined);
          if (res?.ok) status = (await res.json()) as SidecarStatus;
          return Boolean(status?.addresses[0]?.listening.length);
        },
        10_000,
        'status endpoint with the Service listened',
      );
      assert.equal(status!.addressMode, 'fallback');
      assert.equal(status!.addresses[0]!.local, '127.96.0.20');
      await new Promise((r) => setTimeout(r, 1000));
      const rss = ((await (await fetch(`http://127.0.0.1:${statusPort}/status`)).json()) as SidecarStatus)
        .rssBytes;
      assert.ok(rss < MAX_IDLE_RSS, `idle RSS ${Math.round(rss / 1048576)} MiB exceeds the budget`);

      // The `status` subcommand, as `docker exec <sidecar> node sidecar.mjs status` runs it.
      const out = await new Promise<string>((resolve) => {
        const probe = spawn(process.execPath, [bundle, 'status'], {
          env,
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let text = '';
        probe.stdout.on('data', (d) => {
          text += d;
        });
        probe.on('exit', () => resolve(text));
      });
      assert.equal((JSON.parse(out) as SidecarStatus).namespace, 'shop');

      child.kill('SIGTERM');
      assert.equal(await exited, 0);
      assert.match(stderr, /FALLBACK MODE/);
      assert.match(stderr, /"msg":"sidecar stopped"/);
      for (const line of stderr.trim().split('\n')) JSON.parse(line);
    } finally {
      child.kill('SIGKILL');
      await kube.stop();
    }
  });

  it('tunnels through a pod port-forward to a real agent (the production dialer)', async () => {
    const kube = await new FakeKube().start();
    const agent = await startAgent({
      ...AGENT_DEFAULTS,
      token: 'session',
      tunnelPort: 0,
      intercepts: [],
      interceptHost: '127.0.0.1',
      // The test's Services are loopback servers.
      dialLocalTargets: true,
    });
    const echo = await tcpEcho();
    kube.portForwardTo = (pod, port) => (pod === 'api-0' && port === 9901 ? agent.tunnelPort : undefined);
    kube.put('/api/v1/namespaces/shop/pods', {
      metadata: { name: 'api-0', labels: { app: 'api' } },
      spec: { containers: [{ name: 'app' }, { name: 'devbox-agent' }] },
      status: {
        phase: 'Running',
        podIP: '10.244.0.5',
        conditions: [{ type: 'Ready', status: 'True' }],
        containerStatuses: [{ name: 'devbox-agent', ready: true }],
      },
    });
    kube.put('/api/v1/namespaces/shop/services', {
      metadata: { name: 'echo' },
      spec: { clusterIP: '127.0.0.1', ports: [{ port: echo.port, protocol: 'TCP' }] },
    });
    const statusPort = await freePort();
    const child = spawn(process.execPath, [bundle], {
      env: {
        PATH: process.env.PATH,
        DEVBOX_API_SERVER: kube.url,
        DEVBOX_TOKEN: 'test-token',
        DEVBOX_NAMESPACE: 'shop',
        DEVBOX_AGENT_SELECTOR: 'app=api',
        DEVBOX_SESSION_TOKEN: 'session',
        DEVBOX_AGENT_TUNNEL_PORT: '9901',
        DEVBOX_STATUS_PORT: String(statusPort),
        DEVBOX_DNS_PORT: '0',
        DEVBOX_FORCE_FALLBACK: 'true',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      let status: SidecarStatus | undefined;
      await eventually(
        async () => {
          const res = await fetch(`http://127.0.0.1:${statusPort}/status`).catch(() => undefined);
          if (res?.ok) status = (await res.json()) as SidecarStatus;
          return status?.tunnels[0]?.state === 'up' && Boolean(status.addresses[0]?.listening.length);
        },
        10_000,
        'tunnel up and Service listened',
      );
      assert.deepEqual(kube.portForwards, ['api-0:9901']);
      const alias = status!.addresses[0]!.local!;
      assert.deepEqual(await tcpRoundTrip(alias, echo.port, 'through port-forward'), {
        reply: 'through port-forward',
      });
      child.kill('SIGTERM');
      assert.equal(await exited, 0, stderr);
    } finally {
      child.kill('SIGKILL');
      await agent.close();
      await echo.close();
      await kube.stop();
    }
  });

  it('exits with code 2 and names the missing settings when misconfigured', async () => {
    const child = spawn(process.execPath, [bundle], {
      env: { PATH: process.env.PATH, DEVBOX_NAMESPACE: 'shop' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 2);
    assert.match(stderr, /missing apiServer \(JSON \\"apiServer\\" or env DEVBOX_API_SERVER\)/);
  });
});
