/**
 * A namespace with a thousand Services (the benchmark, `npm run bench:scale`, has ten thousand):
 * `up` gets ready, every Service is redirected, names resolve and connect, and a Service created
 * during the session is reachable at its ClusterIP within a second.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deployShop } from '../../../src/demo/shop.js';
import { SIDECAR_BUNDLE_PATH, SIDECAR_CONFIG_PATH } from '../../../src/docker/index.js';
import { createKubeClient, type KubeClient } from '../../../src/kube/index.js';
import { clusterImages, docker, kubeconfig, kubectl, testNamespace } from '../../support/cluster.js';
import { devbox } from '../../support/devbox.js';
import { backService, createService, inventoryPodIp } from '../../support/services.js';

const SERVICES = 1_000;

describe(`a namespace with ${SERVICES} Services`, { timeout: 600_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let client: KubeClient;

  before(async () => {
    ns = await testNamespace('many');
    client = createKubeClient({ kubeconfig, namespace: ns.name });
    await deployShop(client, ns.name, clusterImages().runtime);
    // Service links would give each new pod 7 variables per Service; real namespaces this big turn them off.
    await kubectl([
      '-n',
      ns.name,
      'patch',
      'deployment/api',
      '--type=merge',
      '-p',
      '{"spec":{"template":{"spec":{"enableServiceLinks":false}}}}',
    ]);
    const names = Array.from({ length: SERVICES }, (_, i) => `s-${i}`);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < names.length) await createService(client, ns.name, names[next++]!);
      }),
    );
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name]);
    client?.close();
    await ns?.remove();
  });

  it('gets ready, redirects every Service, and applies a new one within a second', async () => {
    const podIp = await inventoryPodIp(ns.name);
    for (const name of ['s-7', 's-500', 's-999']) await backService(client, ns.name, name, podIp);
    const up = await devbox(['up', 'api', '-n', ns.name, '--detach']);
    assert.equal(up.code, 0, up.stderr);
    const local = `devbox-api.${ns.name}`;
    try {
      const status = JSON.parse(
        (
          await docker([
            'exec',
            `${local}-sidecar`,
            'node',
            SIDECAR_BUNDLE_PATH,
            'status',
            SIDECAR_CONFIG_PATH,
          ])
        ).stdout,
      ) as { addressMode: string; nat?: { targets: number }; readyAfterMs?: number; rssBytes: number };
      assert.equal(status.addressMode, 'nat');
      assert.ok((status.nat?.targets ?? 0) >= SERVICES, JSON.stringify(status.nat));
      assert.ok(
        status.readyAfterMs !== undefined && status.readyAfterMs < 10_000,
        String(status.readyAfterMs),
      );

      const answers = await docker([
        'exec',
        local,
        'node',
        '-e',
        "Promise.all(['s-7', 's-500', 's-999'].map((n) => fetch('http://' + n + '/items').then((r) => r.json()).then((b) => b.service, (e) => String(e.cause ?? e)))).then((a) => console.log(a.join(',')))",
      ]);
      assert.equal(answers.stdout.trim(), 'inventory,inventory,inventory', answers.stderr);

      // A Service created now: the local container connects to its ClusterIP (the sidecar accepts it) within 1 s.
      const poller = docker([
        'exec',
        local,
        'node',
        '-e',
        `const net = require('node:net');
         const ip = () => require('node:fs').existsSync('/tmp/ip') && require('node:fs').readFileSync('/tmp/ip', 'utf8').trim();
         const attempt = (host) => new Promise((res) => { const s = net.connect({ host, port: 80, timeout: 200 });
           s.once('connect', () => { s.destroy(); res(true); }); s.once('timeout', () => { s.destroy(); res(false); }); s.once('error', () => res(false)); });
         (async () => { const deadline = Date.now() + 30000; 
           while (Date.now() < deadline) { const host = ip(); if (host) { if (await attempt(host)) return console.log(Date.now()); }
             await new Promise((r) => setTimeout(r, 10)); } console.log('timeout'); })();`,
      ]);
      await new Promise((r) => setTimeout(r, 2_000)); // the poller is up and polling
      // Containers share the host's clock: the poller prints when it connected.
      const createdAt = Date.now();
      const ip = await createService(client, ns.name, 's-added');
      await docker([
        'exec',
        local,
        'node',
        '-e',
        "require('node:fs').writeFileSync('/tmp/ip', process.argv[1])",
        ip,
      ]);
      const connectedAt = (await poller).stdout.trim();
      const waited = Number(connectedAt) - createdAt;
      assert.ok(waited < 1_000, `the new Service took ${waited} ms (${connectedAt})`);
    } finally {
      const down = await devbox(['down', 'api', '-n', ns.name]);
      assert.equal(down.code, 0, down.stderr);
    }
  });
});
