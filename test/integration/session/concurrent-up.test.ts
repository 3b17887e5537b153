/**
 * Several `devbox up`s of one workload started at once, from separate processes: at most one
 * session results, every other exits naming who holds the workload, and none of them changes
 * anything the session that won made — its traffic keeps flowing.
 */
import assert from 'node:assert/strict';
import { hostname, userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import type { SessionStatus } from '../../../src/session/status.js';
import { kubectl, type testNamespace } from '../../support/cluster.js';
import {
  clusterSnapshot,
  devbox as devboxAs,
  finished,
  type RunAs,
  type RunResult,
  startDevbox as startDevboxAs,
} from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';
import { shopNamespace } from '../../support/shop.js';
import { storefrontHears, storefrontLines, storefrontSteady } from '../../support/storefront.js';

const RACERS = 3;
const me = `${userInfo().username}@${hostname()}`;

/** Every devbox command runs as a user holding only the developer Role (set in `before`). */
const user: RunAs = {};
const devbox = (args: string[]) => devboxAs(args, user);
const startDevbox = (args: string[]) => startDevboxAs(args, user);

/** Starts `count` `devbox up api --detach -o json` at once and waits for all of them. */
async function race(namespace: string, count: number): Promise<RunResult[]> {
  const children = Array.from({ length: count }, () =>
    startDevbox(['up', 'api', '-n', namespace, '--detach', '-o', 'json']),
  );
  return Promise.all(children.map((c) => finished(c, 300_000)));
}

/** Everything a session puts in the cluster, by resourceVersion (a write changes it). */
async function versions(namespace: string): Promise<Record<string, string>> {
  const list = JSON.parse(
    await kubectl(['-n', namespace, 'get', 'deployments,services,configmaps,secrets', '-o', 'json']),
  ) as {
    items: { kind: string; metadata: { name: string; resourceVersion: string; generation?: number } }[];
  };
  // A Deployment's status moves on its own; its generation moves only with its spec.
  return Object.fromEntries(
    list.items.map((i) => [
      `${i.kind}/${i.metadata.name}`,
      i.kind === 'Deployment' ? `generation ${i.metadata.generation}` : i.metadata.resourceVersion,
    ]),
  );
}

/** The workload's only session, as its record lists it. */
async function holderAnnotation(namespace: string): Promise<Record<string, unknown> | undefined> {
  const raw = await kubectl([
    '-n',
    namespace,
    'get',
    'deployment/api',
    '-o',
    'jsonpath={.metadata.annotations.devbox\\.dev/session}',
  ]);
  if (!raw) return undefined;
  const sessions = JSON.parse(raw) as Record<string, unknown>[];
  assert.equal(sessions.length, 1, raw);
  return sessions[0];
}

function assertLosers(results: RunResult[], winner: string): void {
  for (const r of results) {
    assert.equal(r.code, 5, `a losing up exits with CONFLICT:\n${r.stderr}`);
    assert.ok(!r.stdout.includes('"session"'), `no session reported:\n${r.stdout}`);
    assert.ok(r.stderr.includes(me), `the holder's user@host in:\n${r.stderr}`);
    assert.ok(r.stderr.includes(`session ${winner}`), `the holder's session ${winner} in:\n${r.stderr}`);
  }
}

describe(`${RACERS} devbox ups of one workload at once, as users holding only the developer Role`, {
  timeout: 900_000,
}, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let pristine: Record<string, unknown>;
  let winner = '';

  before(async () => {
    ns = await shopNamespace('race');
    user.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    pristine = await clusterSnapshot(ns.name);
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name]);
    await ns?.remove();
  });

  it('starts exactly one session; the others name its holder and exit', async () => {
    const results = await race(ns.name, RACERS);
    const won = results.filter((r) => r.code === 0);
    assert.equal(won.length, 1, results.map((r) => `exit ${r.code}:\n${r.stderr}`).join('\n---\n'));
    winner = (JSON.parse(won[0]!.stdout) as { session: string }).session;
    assertLosers(
      results.filter((r) => r.code !== 0),
      winner,
    );

    assert.equal((await holderAnnotation(ns.name))?.id, winner);
    await storefrontHears(ns.name, 'local container');
    const text = (await devbox(['status', '-o', 'json'])).stdout;
    const sessions = (JSON.parse(text) as SessionStatus[]).filter((s) => s.namespace === ns.name);
    assert.deepEqual(
      sessions.map((s) => s.session),
      [winner],
      text,
    );
    assert.ok(sessions[0]?.ready, text);
  });

  it('leaves a running session and its traffic untouched', async () => {
    assert.ok(winner, 'the previous test started a session');
    await storefrontSteady(ns.name, 'local container');
    const before = await versions(ns.name);
    const started = Date.now();
    const results = await race(ns.name, RACERS);
    assertLosers(results, winner);
    assert.deepEqual(await versions(ns.name), before, 'no loser wrote to the cluster');
    assert.equal((await holderAnnotation(ns.name))?.id, winner);

    await new Promise((r) => setTimeout(r, 2_000));
    const seconds = Math.ceil((Date.now() - started) / 1000);
    const lines = await storefrontLines(ns.name, seconds);
    assert.ok(
      lines.length >= seconds / 2,
      `the storefront kept calling api: ${lines.length} lines in ${seconds}s`,
    );
    const elsewhere = lines.filter((l) => l.answeredBy !== 'local container');
    assert.deepEqual(elsewhere, [], 'every call during the race reached the local container');
  });

  it('down then restores the namespace exactly', async () => {
    const result = await devbox(['down', 'api', '-n', ns.name]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await clusterSnapshot(ns.name), pristine);
  });
});
