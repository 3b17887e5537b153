/**
 * Several sessions on one workload, as developers holding only the developer Role: two
 * personal sessions and the pod's app answer one kept-alive client request by request, by the
 * key each request carries; sessions that would take each other's requests are refused and
 * change nothing; one session's `down` leaves the others working, and the last one restores
 * the namespace byte for byte.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SessionStatus } from '../../../src/session/status.js';
import type { UpResult } from '../../../src/session/up.js';
import { kubectl, localContainers, type testNamespace } from '../../support/cluster.js';
import { clusterSnapshot, devbox as devboxAs, type RunAs } from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';
import { shopNamespace } from '../../support/shop.js';

const user: RunAs = {};
/** A colleague in the same namespace, holding the same Role. */
const other: RunAs = {};
const devbox = (args: string[]) => devboxAs(args, user);

/** A local app that answers with its session's name, so a test can tell the sessions apart. */
const answerWith = (name: string) => [
  '--',
  'node',
  '-e',
  `require('node:http').createServer((q, s) => s.end(JSON.stringify({ where: '${name}' }))).listen(8080)`,
];

/**
 * Sends one request per entry of `keys` from the storefront pod over ONE kept-alive connection
 * (a key, or '' for none); returns who answered each and how many connections were used.
 */
async function askInTurn(namespace: string, keys: string[]): Promise<{ answers: string[]; sockets: number }> {
  const script = `
    const http = require('node:http');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const sockets = new Set();
    const ask = (key) => new Promise((resolve, reject) => {
      const req = http.get({ host: 'api', port: 80, path: '/', agent, headers: key ? { 'x-devbox-session': key } : {} }, (res) => {
        sockets.add(req.socket.localPort);
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(JSON.parse(body).where));
      });
      req.on('error', reject);
      req.setTimeout(20000, () => req.destroy(new Error('no answer in 20 s to the request with key ' + JSON.stringify(key))));
    });
    (async () => {
      const answers = [];
      for (const key of JSON.parse(process.argv[1])) answers.push(await ask(key));
      console.log(JSON.stringify({ answers, sockets: sockets.size }));
      agent.destroy();
    })().catch((e) => { console.error(e); process.exit(1); });`;
  const out = await kubectl([
    '-n',
    namespace,
    'exec',
    'deploy/storefront',
    '--',
    'node',
    '-e',
    script,
    JSON.stringify(keys),
  ]);
  return JSON.parse(out.trim().split('\n').at(-1)!) as { answers: string[]; sockets: number };
}

/** The workload's session record and the specs devbox changes, to show that a refused `up` changed nothing. */
async function workloadState(namespace: string): Promise<string> {
  const w = JSON.parse(await kubectl(['-n', namespace, 'get', 'deployment/api', '-o', 'json']));
  const services = JSON.parse(await kubectl(['-n', namespace, 'get', 'services', '-o', 'json']));
  return JSON.stringify([
    w.metadata.annotations,
    w.spec.template,
    services.items.map((s: { spec: unknown }) => s.spec),
  ]);
}

describe('several sessions on one workload, as users holding only the developer Role', {
  timeout: 900_000,
}, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let pristine: Record<string, unknown>;
  const sessions: Record<string, UpResult> = {};

  before(async () => {
    ns = await shopNamespace('team');
    user.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    other.kubeconfig = (await developerIn(ns.name, 'another-developer')).kubeconfig;
    pristine = await clusterSnapshot(ns.name);
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
  });

  const start = async (name: string, flags: string[]) => {
    const result = await devbox([
      'up',
      'api',
      '-n',
      ns.name,
      '--detach',
      '-o',
      'json',
      '--name',
      name,
      ...flags,
      ...answerWith(name),
    ]);
    assert.equal(result.code, 0, result.stderr);
    sessions[name] = JSON.parse(result.stdout) as UpResult;
    return sessions[name]!;
  };

  it('two personal sessions and the app answer one kept-alive client request by request', async () => {
    const alice = await start('alice', ['--personal']);
    assert.equal(alice.resumed, false, 'the first session adds the agent');
    assert.match(alice.filter, /x-devbox-session: <this session's key>/);
    assert.match(alice.curl ?? '', new RegExp(`x-devbox-session: ${alice.personalKey}`));
    const bob = await start('bob', ['--personal']);
    assert.equal(bob.resumed, true, 'the second joins the agent in place: no rollout');
    assert.notEqual(alice.personalKey, bob.personalKey);
    assert.deepEqual(await localContainers(ns.name), [
      `devbox-api.${ns.name}.alice`,
      `devbox-api.${ns.name}.alice-sidecar`,
      `devbox-api.${ns.name}.bob`,
      `devbox-api.${ns.name}.bob-sidecar`,
    ]);
    const record = await kubectl([
      '-n',
      ns.name,
      'get',
      'deployment/api',
      '-o',
      'jsonpath={.metadata.annotations.devbox\\.dev/session}',
    ]);
    assert.ok(
      !record.includes(alice.personalKey!) && !record.includes(bob.personalKey!),
      'no key in the cluster',
    );

    const keys = [alice.personalKey!, bob.personalKey!, '', bob.personalKey!, alice.personalKey!, ''];
    const { answers, sockets } = await askInTurn(ns.name, keys);
    assert.deepEqual(answers, ['alice', 'bob', 'pod', 'bob', 'alice', 'pod']);
    assert.equal(sockets, 1, 'one kept-alive connection carried them all');
  });

  it('refuses a global session and an identical filter beside them, changing nothing', async () => {
    await start('carol', ['--http-header', 'x-team=/^blue$/']);
    const state = await workloadState(ns.name);
    const containers = await localContainers(ns.name);

    const global = await devbox(['up', 'api', '-n', ns.name, '--detach', '--name', 'dave']);
    assert.equal(global.code, 5, global.stderr);
    assert.match(global.stderr, /filtered session of .*a global session would take its requests/);
    const same = await devbox([
      'up',
      'api',
      '-n',
      ns.name,
      '--detach',
      '--name',
      'erin',
      '--http-header',
      'x-team=/^blue$/',
    ]);
    assert.equal(same.code, 5, same.stderr);
    assert.match(
      same.stderr,
      new RegExp(`same requests \\(x-team: /\\^blue\\$/\\) to .*session ${sessions.carol!.session}`),
    );
    const unsafe = await devbox([
      'up',
      'api',
      '-n',
      ns.name,
      '--detach',
      '--name',
      'erin',
      '--http-header',
      'x-a=/(a+)+$/',
    ]);
    assert.equal(unsafe.code, 2, unsafe.stderr);
    assert.match(unsafe.stderr, /backtrack/);

    assert.equal(await workloadState(ns.name), state);
    assert.deepEqual(await localContainers(ns.name), containers);
    assert.deepEqual((await askInTurn(ns.name, [sessions.alice!.personalKey!, ''])).answers, [
      'alice',
      'pod',
    ]);
  });

  it('status lists every session of the workload with its filter and requests', async () => {
    const text = (await devbox(['status', '-o', 'json'])).stdout;
    const mine = (JSON.parse(text) as SessionStatus[]).filter((s) => s.namespace === ns.name);
    assert.equal(mine.length, 3, text);
    for (const s of mine) {
      assert.deepEqual(
        s.sessions?.map((w) => w.name),
        ['alice', 'bob', 'carol'],
        text,
      );
    }
    const alice = mine.find((s) => s.name === 'alice')?.sessions?.find((w) => w.name === 'alice');
    assert.equal(alice?.mode, 'filtered');
    assert.ok((alice?.requests?.routed ?? 0) >= 3, text);
    const plain = (await devbox(['status'])).stdout;
    assert.match(plain, /\* alice \(.*takes x-devbox-session: <this session's key>/);
  });

  it('clean takes out a session whose lease lapsed and leaves the live ones running', async () => {
    const raw = await kubectl([
      '-n',
      ns.name,
      'get',
      'deployment/api',
      '-o',
      'jsonpath={.metadata.annotations.devbox\\.dev/session}',
    ]);
    const dead = {
      user: 'gone',
      host: 'elsewhere',
      startedAt: '2026-01-01T00:00:00Z',
      id: 'dead00',
      name: 'gone',
      kind: 'local',
      route: { mode: 'mirror', headers: [] },
    };
    await kubectl([
      '-n',
      ns.name,
      'annotate',
      '--overwrite',
      'deployment/api',
      `devbox.dev/session=${JSON.stringify([...JSON.parse(raw), dead])}`,
    ]);
    const clean = await devboxAs(['clean', '-n', ns.name], other);
    assert.equal(clean.code, 0, clean.stderr);
    const after = JSON.parse(
      await kubectl([
        '-n',
        ns.name,
        'get',
        'deployment/api',
        '-o',
        'jsonpath={.metadata.annotations.devbox\\.dev/session}',
      ]),
    ) as { name: string }[];
    assert.deepEqual(
      after.map((s) => s.name),
      ['alice', 'bob', 'carol'],
    );
    assert.deepEqual((await askInTurn(ns.name, [sessions.alice!.personalKey!, ''])).answers, [
      'alice',
      'pod',
    ]);
  });

  it("one session's down leaves the others working; the last one restores the namespace exactly", async () => {
    const down = await devbox(['down', 'api', '-n', ns.name, '--name', 'bob']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /Still running there: alice .*carol/);
    const { answers } = await askInTurn(ns.name, [
      sessions.alice!.personalKey!,
      sessions.bob!.personalKey!,
      '',
    ]);
    assert.deepEqual(answers, ['alice', 'pod', 'pod'], "bob's key now matches no session");
    assert.ok(!(await localContainers(ns.name)).some((c) => c.includes('.bob')));

    assert.equal((await devbox(['down', 'api', '-n', ns.name, '--name', 'carol'])).code, 0);
    const last = await devbox(['down', 'api', '-n', ns.name, '--name', 'alice']);
    assert.equal(last.code, 0, last.stderr);
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
    assert.deepEqual(await localContainers(ns.name), []);
  });
});
