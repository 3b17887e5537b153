import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { TunnelClient } from '../../../src/tunnel/client.js';
import { closeOf, exchange, Fixtures, outsideAddress, TEST_TOKEN, within } from '../tunnel/harness.js';

// dist/bundle/agent.mjs is produced by `npm run build` (scripts/bundle.mjs), which test:unit runs first.
const BUNDLE = resolve('dist/bundle/agent.mjs');

describe('bundled agent', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('runs with plain node and no node_modules, logs JSON, serves, and stops cleanly on SIGTERM', async () => {
    const size = (await stat(BUNDLE).catch(() => undefined))?.size;
    assert.ok(size, `${BUNDLE} is missing: run \`npm run build\` first`);
    assert.ok(size < 1024 * 1024, `bundle is ${size} bytes; it travels in a ConfigMap`);
    const dir = await mkdtemp(join(tmpdir(), 'devbox-agent-bundle-'));
    fx.add(() => rm(dir, { recursive: true, force: true }));
    await copyFile(BUNDLE, join(dir, 'agent.mjs'));
    const app = await fx.bannerServer('from-app');
    const outside = outsideAddress();
    const echoServer = net.createServer((s) => s.on('error', () => {}).pipe(s));
    await new Promise<void>((res) => echoServer.listen(0, outside, res));
    fx.add(() => new Promise<void>((res) => echoServer.close(() => res())));
    const echo = (echoServer.address() as AddressInfo).port;
    const tunnelPort = await fx.freePort();
    const interceptPort = await fx.freePort();
    const child = spawn(process.execPath, ['agent.mjs'], {
      cwd: dir,
      env: {
        PATH: process.env.PATH,
        DEVBOX_AGENT_TOKEN: TEST_TOKEN,
        DEVBOX_TUNNEL_PORT: String(tunnelPort),
        DEVBOX_INTERCEPT: `${interceptPort}:${app}`,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    fx.add(() => {
      child.kill('SIGKILL');
    });
    const lines: Record<string, unknown>[] = [];
    let stderr = '';
    let notify: () => void = () => {};
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const complete = stderr.split('\n');
      stderr = complete.pop()!;
      for (const line of complete) lines.push(JSON.parse(line));
      notify();
    });
    const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
    const logged = (msg: string) =>
      within(
        new Promise<void>((res) => {
          notify = () => {
            if (lines.some((l) => l.msg === msg)) res();
          };
          notify();
        }),
        5_000,
        `log "${msg}"`,
      );
    await logged('agent listening');
    assert.equal(lines[0]!.component, 'agent');
    assert.equal(typeof lines[0]!.time, 'string');

    assert.equal(await exchange(interceptPort), 'from-app', 'no session: pass-through');
    const socket = await fx.socketTo(tunnelPort);
    const client = await TunnelClient.connect(socket, { token: TEST_TOKEN });
    await assert.rejects(
      client.openTcp('127.0.0.1', echo),
      /loopback or link-local/,
      'the pod loopback is refused',
    );
    const stream = await client.openTcp(outside, echo);
    stream.end('via bundle');
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    await within(closeOf(stream), 2_000, 'echo');
    assert.equal(Buffer.concat(chunks).toString(), 'via bundle');

    const clientClosed = closeOf(client);
    child.kill('SIGTERM');
    assert.equal(await within(exited, 5_000, 'exit after SIGTERM'), 0);
    await within(clientClosed, 2_000, 'client sees the agent go');
    assert.ok(lines.some((l) => l.msg === 'agent stopped'));
  });
});
