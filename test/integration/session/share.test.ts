/**
 * `devbox share` in a real browser, as a user holding only the developer Role: a browser that
 * opened the link sees the local container's answer and keeps seeing it; another browser sees the
 * cluster's; after `devbox down` the first one sees the cluster's again, its old link too.
 * Screenshots of both browsers go where the test output says.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ShareResult } from '../../../src/session/share.js';
import { type BrowserUser, launchBrowser, type TestBrowser } from '../../support/browser.js';
import { clusterDir, kubectl, type testNamespace } from '../../support/cluster.js';
import { devbox as devboxAs, type RunAs } from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';
import { shopNamespace } from '../../support/shop.js';

const user: RunAs = {};
const devbox = (args: string[]) => devboxAs(args, user);

/** Stops a port-forward and waits until it has let go of its port. */
async function stopped(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill();
  await exited;
}

/** Runs the printed port-forward command as the user would, until it listens on `port`. */
async function runPortForward(command: string[], port: number): Promise<ChildProcess> {
  const child = spawn(`${clusterDir}/bin/kubectl`, command, {
    env: { ...process.env, KUBECONFIG: user.kubeconfig },
    stdio: 'ignore',
  });
  for (let i = 0; i < 100; i++) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return child;
    if (child.exitCode !== null) break;
    await sleep(200);
  }
  child.kill();
  throw new Error(`kubectl ${command.join(' ')} did not listen on ${port}`);
}

/**
 * Waits until every api pod is what `expectAgent` says and none is terminating: `kubectl
 * port-forward svc/api` picks one pod when it starts and exits once that pod is gone.
 */
async function apiPodsSettled(namespace: string, expectAgent: boolean): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const pods = JSON.parse(
      await kubectl(['-n', namespace, 'get', 'pods', '-l', 'app=api', '-o', 'json']),
    ) as { items: { metadata: { deletionTimestamp?: string }; spec: { containers: { name: string }[] } }[] };
    const settled =
      pods.items.length > 0 &&
      pods.items.every(
        (p) =>
          !p.metadata.deletionTimestamp &&
          p.spec.containers.some((c) => c.name === 'devbox-agent') === expectAgent,
      );
    if (settled) return;
    if (Date.now() > deadline)
      throw new Error(`api pods in ${namespace} did not settle: ${JSON.stringify(pods)}`);
    await sleep(250);
  }
}

/** What the api answered this browser, from the JSON page it shows. */
async function answeredBy(browser: BrowserUser, url: string): Promise<string> {
  const status = await browser.goto(url);
  assert.equal(status, 200, `${browser.name}: ${url} answered ${status}`);
  return (JSON.parse(await browser.text()) as { where: string }).where;
}

describe('devbox share, in a browser', { timeout: 600_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let browser: TestBrowser;
  let forward: ChildProcess | undefined;

  before(async () => {
    ns = await shopNamespace('share');
    user.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    browser = await launchBrowser();
  });

  after(async () => {
    forward?.kill();
    await browser?.close();
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
  });

  it('pins the browser that opened the link to the session, and no other; after down both see the cluster', async (t) => {
    t.diagnostic(`screenshots: ${browser.screenshotDir}`);
    const up = await devbox(['up', 'api', '-n', ns.name, '--personal', '--detach']);
    assert.equal(up.code, 0, up.stderr);

    const shared = await devbox(['share', 'api', '-n', ns.name, '-o', 'json']);
    assert.equal(shared.code, 0, shared.stderr);
    const result = JSON.parse(shared.stdout) as ShareResult;
    assert.equal(result.entry.kind, 'port-forward', shared.stdout);
    if (result.entry.kind !== 'port-forward') return;
    const entryUrl = new URL(result.entry.url);
    assert.equal(new URL(result.link).searchParams.get('devbox-share')?.length, 43);
    assert.ok(Date.parse(result.expires) > Date.now());
    await apiPodsSettled(ns.name, true);
    forward = await runPortForward(result.entry.command, Number(entryUrl.port));

    const teammate = await browser.newUser('teammate');
    const other = await browser.newUser('other');
    assert.equal(await answeredBy(teammate, result.link), 'local container');
    assert.equal(new URL(teammate.url()).search, '', 'the key left the address bar');
    await teammate.screenshot('opened-link');
    assert.equal(await answeredBy(teammate, entryUrl.href), 'local container', 'the next navigation too');
    const [cookie] = await teammate.cookies();
    assert.deepEqual(
      [cookie?.name, cookie?.httpOnly, cookie?.sameSite, cookie?.domain],
      ['devbox-session', true, 'Lax', entryUrl.hostname],
    );
    assert.equal(await answeredBy(other, entryUrl.href), 'pod');
    await other.screenshot('no-link');

    const down = await devbox(['down', 'api', '-n', ns.name]);
    assert.equal(down.code, 0, down.stderr);
    // The pods the port-forward led to were replaced: the user runs the command again.
    await stopped(forward);
    await apiPodsSettled(ns.name, false);
    forward = await runPortForward(result.entry.command, Number(entryUrl.port));
    assert.equal(await answeredBy(teammate, entryUrl.href), 'pod');
    assert.equal(
      await answeredBy(teammate, result.link),
      'pod',
      'an old link shows the cluster, not an error',
    );
    await teammate.screenshot('after-down');
  });
});
