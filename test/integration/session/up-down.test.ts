/**
 * Acceptance of `devbox up` / `devbox down` on the sample shop: the local
 * container answers the cluster's requests and reaches the cluster by name,
 * and `down` — or any failure on the way — leaves the namespace exactly as it was.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse, stringify } from 'yaml';
import type { SessionStatus } from '../../../src/session/status.js';
import { LEASE_DURATION_SECONDS } from '../../../src/util/session-lease.js';
import { docker, kubectl, type testNamespace } from '../../support/cluster.js';
import {
  clusterSnapshot,
  devbox as devboxAs,
  finished,
  type RunAs,
  startDevbox as startDevboxAs,
  waitForOutput,
} from '../../support/devbox.js';
import { developerIn, developerRoleTemplate } from '../../support/developer.js';
import { shopNamespace } from '../../support/shop.js';
import { storefrontHears as hears } from '../../support/storefront.js';

const storefrontHears = (ns: string, where: string) => hears(ns, where, 30_000);

/** Every devbox command runs as a user holding only the developer Role (set in `before`). */
const user: RunAs = {};
const devbox = (args: string[]) => devboxAs(args, user);
const startDevbox = (args: string[]) => startDevboxAs(args, user);

/** `devbox status -o json` for the session in `namespace`, and the whole output for messages. */
async function sessionStatus(namespace: string) {
  const text = (await devbox(['status', '-o', 'json'])).stdout;
  const mine = (JSON.parse(text) as SessionStatus[]).find((s) => s.namespace === namespace);
  return { mine, text };
}

describe('devbox up and down on the sample shop, as a user holding only the developer Role', {
  timeout: 600_000,
}, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let pristine: Record<string, unknown>;

  before(async () => {
    ns = await shopNamespace('shop');
    user.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    // A Service with a numeric target port: `up` points it at the agent's port name.
    await kubectl(['-n', ns.name, 'apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'api-direct' },
        spec: { selector: { app: 'api' }, ports: [{ port: 8081, targetPort: 8080 }] },
      }),
    });
    pristine = await clusterSnapshot(ns.name);
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
  });

  const assertPristine = async () => assert.deepEqual(await clusterSnapshot(ns.name), pristine);

  it('doctor finds everything up needs, the sidecar account included', async () => {
    const result = await devbox(['doctor', '-n', ns.name, '-o', 'json']);
    const findings = JSON.parse(result.stdout) as { check: string; status: string; detail: string }[];
    for (const check of ['cluster', 'permissions', 'sidecar account']) {
      const found = findings.find((f) => f.check === check);
      assert.equal(found?.status, 'ok', `${check}: ${result.stdout}`);
    }
    assert.equal(result.code, 0, result.stdout);
  });

  it("names the template and changes nothing when the sidecar's account is missing", async () => {
    await kubectl(['-n', ns.name, 'delete', 'serviceaccount', 'devbox-sidecar']);
    try {
      const before = await clusterSnapshot(ns.name);
      const result = await devbox(['up', 'api', '-n', ns.name, '--detach']);
      assert.equal(result.code, 3, result.stderr);
      assert.match(result.stderr, /serviceaccount\/devbox-sidecar/);
      assert.match(result.stderr, /templates\/rbac\/devbox-developer-role\.yaml/);
      assert.deepEqual(await clusterSnapshot(ns.name), before);
      const doctor = await devbox(['doctor', '-n', ns.name, '-o', 'json']);
      const account = (JSON.parse(doctor.stdout) as { check: string; status: string }[]).find(
        (f) => f.check === 'sidecar account',
      );
      assert.equal(account?.status, 'fail', doctor.stdout);
    } finally {
      await kubectl(['-n', ns.name, 'apply', '-f', developerRoleTemplate]);
    }
    await assertPristine();
  });

  it('refuses an unknown workload with the closest names and changes nothing', async () => {
    const result = await devbox(['up', 'apj', '-n', ns.name, '--detach']);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /deployment\/api/);
    await assertPristine();
  });

  it('refuses a malformed -e before touching anything', async () => {
    const result = await devbox(['up', 'api', '-n', ns.name, '--detach', '-e', '1BAD=x']);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /1BAD/);
    await assertPristine();
  });

  it('refuses an image that is not in the local engine and changes nothing', async () => {
    const result = await devbox(['up', 'api', '-n', ns.name, '--detach', '--image', 'devbox-missing:nope']);
    assert.equal(result.code, 3, result.stderr);
    assert.match(result.stderr, /devbox-missing:nope/);
    await assertPristine();
  });

  it('undoes the agent when the published port is taken', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '0.0.0.0', r));
    const port = (taken.address() as { port: number }).port;
    try {
      const result = await devbox(['up', 'api', '-n', ns.name, '--detach', '-p', `${port}:8080`]);
      assert.equal(result.code, 5, result.stderr);
      assert.match(result.stderr, new RegExp(String(port)));
    } finally {
      taken.close();
    }
    await assertPristine();
    assert.equal(
      (await docker(['ps', '-aq', '--filter', `label=devbox.namespace=${ns.name}`])).stdout.trim(),
      '',
    );
  });

  it('runs api locally: in-cluster requests reach it, it reaches the cluster by name', async () => {
    assert.equal((await storefrontHears(ns.name, 'pod')).answeredBy, 'pod');
    const result = await devbox(['up', 'api', '-n', ns.name, '--detach', '-o', 'json']);
    assert.equal(result.code, 0, result.stderr);
    const session = JSON.parse(result.stdout) as { workload: string; containers: { service: string } };
    assert.equal(session.workload, 'deployment/api');

    const heard = await storefrontHears(ns.name, 'local container');
    assert.equal(heard.inventory, 'inventory', 'the local api reached inventory through cluster DNS');

    const fetched = await docker([
      'exec',
      session.containers.service,
      'node',
      '-e',
      "fetch('http://inventory.' + process.argv[1] + '.svc.cluster.local/items').then(r => r.json()).then(b => console.log(b.service))",
      ns.name,
    ]);
    assert.equal(fetched.stdout.trim(), 'inventory', fetched.stderr);

    const { mine, text } = await sessionStatus(ns.name);
    assert.ok(mine?.ready, text);
    assert.ok((mine?.podsRouted?.toSession ?? 0) >= 1, `the agents' routing in: ${text}`);
  });

  it('status says when the local app has stopped, and where to look', async () => {
    const service = `devbox-api.${ns.name}`;
    await docker(['stop', '-t', '1', service]);
    try {
      const { mine, text } = await sessionStatus(ns.name);
      assert.equal(mine?.ready, false, text);
      assert.match(mine?.reason ?? '', new RegExp(`${service} is not running .*docker logs ${service}`));
    } finally {
      await docker(['start', service]);
    }
  });

  it('refuses a second up while the session runs, naming who holds it', async () => {
    const result = await devbox(['up', 'api', '-n', ns.name, '--detach']);
    assert.equal(result.code, 5, result.stderr);
    assert.match(result.stderr, /already/);
  });

  it('down restores the workload and its Services exactly and removes what devbox added', async () => {
    const result = await devbox(['down', 'api', '-n', ns.name]);
    assert.equal(result.code, 0, result.stderr);
    await assertPristine();
    assert.equal(
      (await docker(['ps', '-aq', '--filter', `label=devbox.namespace=${ns.name}`])).stdout.trim(),
      '',
    );
    assert.equal((await storefrontHears(ns.name, 'pod')).answeredBy, 'pod');
  });

  it('starts again right after down (regression: pods of the previous session came back with its token), with a CA file', async () => {
    const first = await devbox(['up', 'api', '-n', ns.name, '--detach']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal((await devbox(['down', 'api', '-n', ns.name])).code, 0);
    // The cluster's CA as a file next to the kubeconfig, as minikube and kubeadm write it: the sidecar needs it too.
    const dir = await mkdtemp(join(tmpdir(), 'devbox-kubeconfig-'));
    const config = parse(await readFile(user.kubeconfig!, 'utf8'));
    const cluster = config.clusters[0].cluster;
    await writeFile(join(dir, 'ca.crt'), Buffer.from(cluster['certificate-authority-data'], 'base64'));
    delete cluster['certificate-authority-data'];
    cluster['certificate-authority'] = 'ca.crt';
    await writeFile(join(dir, 'config'), stringify(config));
    const again = await devbox([
      'up',
      'api',
      '-n',
      ns.name,
      '--detach',
      '--timeout',
      '60',
      '--kubeconfig',
      join(dir, 'config'),
    ]);
    await rm(dir, { recursive: true });
    assert.equal(again.code, 0, again.stderr);
    await storefrontHears(ns.name, 'local container');
    assert.equal((await devbox(['down', 'api', '-n', ns.name])).code, 0);
    await assertPristine();
  });

  for (const step of [
    "Checking the sidecar's account",
    'Taking the session lease',
    'Claiming deployment/api',
    'Adding the agent',
    'Waiting for deployment/api to roll out',
    'Pointing service/api-direct',
    'Resolving the env',
  ]) {
    it(`leaves state that devbox down restores when the CLI is killed after "${step}"`, async () => {
      const child = startDevbox(['up', 'api', '-n', ns.name, '--detach']);
      await waitForOutput(child, new RegExp(`✓ ${step}`));
      child.kill('SIGKILL');
      await finished(child, 10_000);
      const result = await devbox(['down', 'api', '-n', ns.name]);
      assert.equal(result.code, 0, result.stderr);
      await assertPristine();
    });
  }

  it("clean leaves another developer's live session alone, saying whose and how fresh; --force ends it", async () => {
    const up = await devbox(['up', 'api', '-n', ns.name, '--detach']);
    assert.equal(up.code, 0, up.stderr);
    await storefrontHears(ns.name, 'local container');
    const other = await developerIn(ns.name, 'another-developer');
    const left = await devboxAs(['clean', '-n', ns.name], other);
    assert.equal(left.code, 0, left.stderr);
    assert.match(
      left.stderr,
      /left deployment\/api \(.*\) alone: session of .*, renewed \d+ s ago; --force ends it/,
    );
    // Long enough for the lease to lapse, were the sidecar not renewing it.
    await new Promise((r) => setTimeout(r, (LEASE_DURATION_SECONDS + 5) * 1000));
    assert.match((await devboxAs(['clean', '-n', ns.name], other)).stderr, /left deployment\/api/);
    await storefrontHears(ns.name, 'local container');
    assert.notEqual(
      (await docker(['ps', '-q', '--filter', `label=devbox.namespace=${ns.name}`])).stdout.trim(),
      '',
      'the local containers of the live session stay',
    );
    const forced = await devboxAs(['clean', '-n', ns.name, '--force'], other);
    assert.equal(forced.code, 0, forced.stderr);
    await kubectl(['-n', ns.name, 'delete', 'serviceaccount', 'another-developer']);
    await kubectl(['-n', ns.name, 'delete', 'rolebinding', 'devbox-developer-another-developer']);
    await assertPristine();
  });

  it('clean restores what a killed up left once its lease lapses, and exits 0', async () => {
    const child = startDevbox(['up', 'api', '-n', ns.name, '--detach']);
    await waitForOutput(child, /✓ Waiting for deployment\/api to roll out/);
    child.kill('SIGKILL');
    await finished(child, 10_000);
    // Until its lease lapses nothing tells a killed up from a slow one.
    const early = await devbox(['clean', '-n', ns.name]);
    assert.match(early.stderr, /left deployment\/api/);
    await new Promise((r) => setTimeout(r, (LEASE_DURATION_SECONDS + 1) * 1000));
    const result = await devbox(['clean', '-n', ns.name]);
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /warning|left/, result.stderr);
    await assertPristine();
  });

  it('stops on Ctrl-C before the session is ready, undoes what it did and exits 130', async () => {
    const child = startDevbox(['up', 'api', '-n', ns.name, '--detach']);
    await waitForOutput(child, /✓ Adding the agent/);
    child.kill('SIGINT');
    const result = await finished(child, 120_000);
    assert.equal(result.code, 130, result.stderr);
    assert.match(result.stderr, /Undoing: restoring deployment\/api/);
    await assertPristine();
  });

  it('ends the session on Ctrl-C in the foreground and restores the cluster', async () => {
    const child = startDevbox(['up', 'api', '-n', ns.name]);
    await waitForOutput(child, /runs locally in devbox-api\./);
    await storefrontHears(ns.name, 'local container');

    // A ConfigMap change reaches the local container within 5 s, as the kubelet's refresh would.
    await kubectl([
      '-n',
      ns.name,
      'patch',
      'configmap',
      'shop-settings',
      '-p',
      '{"data":{"greeting":"changed"}}',
    ]);
    const deadline = Date.now() + 5000;
    let seen = '';
    while (Date.now() < deadline && seen !== 'changed') {
      seen = (
        await docker([
          'exec',
          `devbox-api.${ns.name}`,
          'node',
          '-e',
          "process.stdout.write(require('fs').readFileSync('/etc/shop/greeting','utf8'))",
        ])
      ).stdout;
      if (seen !== 'changed') await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(seen, 'changed', 'the new greeting reached the local container within 5 s');
    await kubectl([
      '-n',
      ns.name,
      'patch',
      'configmap',
      'shop-settings',
      '-p',
      '{"data":{"greeting":"hello from the shop"}}',
    ]);

    child.kill('SIGINT');
    const result = await finished(child, 60_000);
    assert.equal(result.code, 130, result.stderr);
    await assertPristine();
  });

  it('ends only its own session when the terminal closes, leaving a newer session alone; -o json keeps stdout for the JSON', async () => {
    const child = startDevbox([
      'up',
      'api',
      '-n',
      ns.name,
      '-o',
      'json',
      '--',
      'node',
      '-e',
      "console.log('said by the container'); setInterval(() => {}, 60_000)",
    ]);
    await waitForOutput(child, /said by the container/);
    // Someone else's session holds the workload now (as after a down from elsewhere and their up).
    const other = JSON.stringify({ user: 'someone', host: 'elsewhere', startedAt: '', id: 'other0' });
    await kubectl([
      '-n',
      ns.name,
      'annotate',
      '--overwrite',
      'deployment/api',
      `devbox.dev/session=${other}`,
    ]);

    child.kill('SIGHUP');
    const result = await finished(child, 60_000);
    assert.equal(result.code, 129, result.stderr);
    assert.equal((JSON.parse(result.stdout) as { workload: string }).workload, 'deployment/api');
    assert.match(result.stderr, /said by the container/, "the container's output went to stderr");
    assert.match(result.stderr, /now carries another session, of someone@elsewhere.*left alone/);
    const holder = await kubectl([
      '-n',
      ns.name,
      'get',
      'deployment/api',
      '-o',
      'jsonpath={.metadata.annotations.devbox\\.dev/session}',
    ]);
    assert.equal((JSON.parse(holder) as { id: string }).id, 'other0', 'the record as they wrote it');
    assert.equal(
      (await docker(['ps', '-aq', '--filter', `label=devbox.namespace=${ns.name}`])).stdout.trim(),
      '',
      'its own local containers are gone',
    );

    assert.equal((await devbox(['down', 'api', '-n', ns.name])).code, 0);
    await assertPristine();
  });
});
