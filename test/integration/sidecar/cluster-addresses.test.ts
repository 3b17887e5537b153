/**
 * Cluster addresses on the real cluster: the local app listens on a port that other Services of
 * the namespace use too (regression: the sidecar bound 10.96.x.y:8080 first and the app died with
 * EADDRINUSE), and a StatefulSet whose headless Service uses the app's own port; the local
 * container still reaches those Services, by name and by pod name. In-cluster callers never meet
 * a local app that is down: the pod's app answers them until it is back.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { docker, kubectl, type testNamespace } from '../../support/cluster.js';
import { devbox, finished, type RunAs, startDevbox, waitForOutput } from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';
import { shopNamespace } from '../../support/shop.js';
import { storefrontHears, storefrontLines, storefrontSteady } from '../../support/storefront.js';

/** Runs `script` with node in the local container; its stdout, trimmed. */
async function inLocal(container: string, script: string): Promise<string> {
  const result = await docker(['exec', container, 'node', '-e', script]);
  return result.stdout.trim();
}

/** Whether the container is still running a moment after `up` returned. */
async function stillRunning(container: string): Promise<string> {
  await new Promise((r) => setTimeout(r, 2000));
  const state = await docker(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', container]);
  if (state.stdout.trim() === 'running 0') return 'running';
  const logs = await docker(['logs', '--tail', '5', container]).catch((e: Error) => ({ stderr: e.message }));
  return `${state.stdout.trim()}: ${logs.stderr}`;
}

describe('cluster addresses that share the app ports', { timeout: 600_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  /** Holds only the developer Role: may not read the kubernetes Service of default. */
  const developer: RunAs = {};

  before(async () => {
    ns = await shopNamespace('nat');
    developer.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    // Another Service on 8080, the port the api app listens on, in front of inventory.
    await kubectl(['-n', ns.name, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'other' },
        spec: { selector: { app: 'inventory' }, ports: [{ port: 8080, targetPort: 8080 }] },
      }),
    });
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
  });

  it('runs an app on a port another Service uses, and reaches that Service from the local container', async () => {
    const up = await devbox(['up', 'api', '-n', ns.name, '--detach'], developer);
    assert.equal(up.code, 0, up.stderr);
    const local = `devbox-api.${ns.name}`;
    try {
      assert.equal(await stillRunning(local), 'running');
      const viaOther = await inLocal(
        local,
        "fetch('http://other:8080/items').then(r => r.json()).then(b => console.log(b.service), e => console.log(String(e.cause ?? e)))",
      );
      assert.equal(viaOther, 'inventory');
      const own = await inLocal(
        local,
        "fetch('http://127.0.0.1:8080/').then(r => r.json()).then(b => console.log(b.service), e => console.log(String(e.cause ?? e)))",
      );
      assert.equal(own, 'api', 'the app keeps its own port');
      // In-cluster clients find the API server at KUBERNETES_SERVICE_HOST:PORT (the kubernetes
      // Service of default, a namespace the sidecar does not watch), with the pod's token and CA.
      // The developer may not read that Service: its address comes from the agent's own env. Nor
      // may the developer mint the pod's token (create serviceaccounts/token): an admin does here.
      const token = (await kubectl(['-n', ns.name, 'create', 'token', 'default', '--duration=10m'])).trim();
      const apiCheck =
        "const fs = require('node:fs'); const d = '/var/run/secrets/kubernetes.io/serviceaccount/';" +
        "require('node:https').get({ host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT, path: '/version'," +
        " ca: fs.readFileSync(d + 'ca.crt'), headers: { authorization: 'Bearer ' + process.env.POD_TOKEN } }," +
        " (r) => { let b = ''; r.on('data', (c) => (b += c)); r.on('end', () => console.log(r.statusCode, JSON.parse(b).gitVersion ? 'version' : b)); })" +
        ".on('error', (e) => console.log('error', e.code ?? e.message));";
      const api = (
        await docker(['exec', '-e', `POD_TOKEN=${token}`, local, 'node', '-e', apiCheck])
      ).stdout.trim();
      assert.equal(api, '200 version', "the pod's own API access works, TLS end to end");
    } finally {
      const down = await devbox(['down', 'api', '-n', ns.name], developer);
      assert.equal(down.code, 0, down.stderr);
    }
  });

  it('runs a StatefulSet app whose headless Service uses its port, and reaches the pods by name', async () => {
    const up = await devbox(['up', 'sts/db', '-n', ns.name, '--detach']);
    assert.equal(up.code, 0, up.stderr);
    const local = `devbox-db.${ns.name}`;
    try {
      assert.equal(await stillRunning(local), 'running');
      const reply = await inLocal(
        local,
        "const s = require('node:net').connect(5432, 'db-0.db'); s.on('data', (d) => { console.log(String(d).trim()); s.destroy(); }); s.on('error', (e) => console.log(e.code));",
      );
      assert.equal(reply, 'db ready', 'db-0.db:5432 is the pod, not the local app');
    } finally {
      const down = await devbox(['down', 'sts/db', '-n', ns.name]);
      assert.equal(down.code, 0, down.stderr);
    }
  });

  it('serves in-cluster callers from the pod while the local app is down, and from the local app once it is back', async () => {
    const up = await devbox(['up', 'api', '-n', ns.name, '--detach']);
    assert.equal(up.code, 0, up.stderr);
    const local = `devbox-api.${ns.name}`;
    try {
      // Calls made during the rollout may still be timing out: let them end before judging.
      await storefrontSteady(ns.name, 'local container');
      await docker(['stop', '-t', '1', local]);
      await new Promise((r) => setTimeout(r, 8000));
      const whileDown = await storefrontLines(ns.name, 5);
      assert.ok(whileDown.length >= 3, JSON.stringify(whileDown));
      assert.deepEqual(
        whileDown.filter((l) => l.answeredBy !== 'pod'),
        [],
        'every request answered, by the pod',
      );
      const status = JSON.parse((await devbox(['status', '-o', 'json'])).stdout) as {
        namespace: string;
        podsRouted?: { localRefused: number };
      }[];
      const mine = status.find((s) => s.namespace === ns.name);
      assert.ok((mine?.podsRouted?.localRefused ?? 0) >= 3, JSON.stringify(mine));
      const text = (await devbox(['status'])).stdout;
      assert.match(
        text,
        /\d+ of yours refused by your app \(not listening\) and served by the pod's app instead/,
      );

      await docker(['start', local]);
      await storefrontHears(ns.name, 'local container');
    } finally {
      const down = await devbox(['down', 'api', '-n', ns.name]);
      assert.equal(down.code, 0, down.stderr);
    }
  });

  it('fails up when the local app exits right after it starts, with its exit code and last lines, and undoes everything', async () => {
    const before = await kubectl([
      '-n',
      ns.name,
      'get',
      'deploy/api',
      '-o',
      'jsonpath={.spec.template.spec.containers[*].name}',
    ]);
    const up = await devbox([
      'up',
      'api',
      '-n',
      ns.name,
      '--detach',
      '--',
      'node',
      '-e',
      "console.error('cannot start: boom'); process.exit(3)",
    ]);
    assert.equal(up.code, 2, up.stderr);
    assert.match(up.stderr, /exited with code 3/);
    assert.match(up.stderr, /cannot start: boom/);
    const left = await docker(['ps', '-aq', '--filter', `label=devbox.namespace=${ns.name}`]);
    assert.equal(left.stdout.trim(), '', 'no local container is left');
    const after = await kubectl([
      '-n',
      ns.name,
      'get',
      'deploy/api',
      '-o',
      'jsonpath={.spec.template.spec.containers[*].name}',
    ]);
    assert.equal(after, before, 'the workload is restored');
  });

  it('reports a foreground app that dies later with its exit code and last lines, and ends the session', async () => {
    const before = await kubectl([
      '-n',
      ns.name,
      'get',
      'deploy/api',
      '-o',
      'jsonpath={.spec.template.spec}',
    ]);
    const app =
      "require('node:http').createServer((q, r) => r.end('{}')).listen(8080, () => console.log('serving'));" +
      "setTimeout(() => { console.error('fatal: lost the database'); process.exit(3); }, 8000);";
    const child = startDevbox(['up', 'api', '-n', ns.name, '--', 'node', '-e', app]);
    await waitForOutput(child, /runs locally in devbox-api\./);
    const result = await finished(child, 120_000);
    assert.equal(result.code, 3, result.stderr);
    assert.match(
      result.stderr,
      /The local container exited with code 3; ending the session\. Its last lines:\n(.*\n)*fatal: lost the database/,
    );
    const after = await kubectl(['-n', ns.name, 'get', 'deploy/api', '-o', 'jsonpath={.spec.template.spec}']);
    assert.equal(after, before, 'the workload is restored');
  });
});
