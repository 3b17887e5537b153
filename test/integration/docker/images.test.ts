/**
 * The images devbox builds without a registry, run on the real engine.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  ensureBusyboxImage,
  ensurePauseImage,
  ensureRuntimeImage,
  NODE_UID,
  planBusyboxImage,
  planPauseImage,
  planRuntimeImage,
} from '../../../src/docker/runtime-image.js';
import {
  docker,
  removeTestContainers,
  requireStaticBusybox,
  runContainer,
  startContainer,
  TEST_LABELS,
  waitForOutput,
} from './helpers.js';

const run = promisify(execFile);

let runtime: string;
let busybox: string;
let pause: string;

before(async () => {
  await docker.ping();
  await requireStaticBusybox();
  runtime = (await ensureRuntimeImage(docker)).tag;
  busybox = (await ensureBusyboxImage(docker)).tag;
  pause = (await ensurePauseImage(docker)).tag;
});

after(removeTestContainers);

describe('runtime image', () => {
  it('runs node as uid 1000 (node) with HOME, CA certificates and full ICU', async () => {
    const script = `
      const os = require('os'), fs = require('fs');
      console.log(JSON.stringify({
        uid: process.getuid(), gid: process.getgid(), user: os.userInfo().username, home: os.homedir(),
        version: process.version, ca: fs.existsSync(process.env.SSL_CERT_FILE),
        month: new Intl.DateTimeFormat('de', { month: 'long', timeZone: 'UTC' }).format(new Date(0)),
        tmpWritable: (fs.writeFileSync('/tmp/x', 'x'), true),
      }));`;
    const result = await runContainer({ image: runtime, cmd: ['node', '-e', script], networkMode: 'none' });
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout), {
      uid: NODE_UID,
      gid: NODE_UID,
      user: 'node',
      home: '/home/node',
      version: process.version,
      ca: true,
      month: 'Januar',
      tmpWritable: true,
    });
  });

  it('carries its Node version and a content hash in the tag', () => {
    assert.match(runtime, new RegExp(`^devbox-runtime:node${process.versions.node}-[0-9a-f]{12}$`));
  });

  it('lets a root sidecar with NET_ADMIN put a ClusterIP on lo, reachable from a joined container', async () => {
    const listen = `
      require('child_process').execFileSync('ip', ['addr', 'add', '10.96.0.20/32', 'dev', 'lo']);
      require('net').createServer((s) => s.end('hello from sidecar\\n'))
        .listen(8080, '10.96.0.20', () => console.log('listening'));`;
    // No network but loopback: nothing leaves the container.
    const sidecar = await startContainer({
      image: runtime,
      user: '0',
      capAdd: ['NET_ADMIN'],
      networkMode: 'none',
      cmd: ['node', '-e', listen],
    });
    try {
      await waitForOutput(sidecar, /listening/);
      const dial = `
        const s = require('net').connect(8080, '10.96.0.20');
        s.on('data', (d) => process.stdout.write(d)).on('error', (e) => { console.error(e.message); process.exit(1); });`;
      const joined = await runContainer({
        image: runtime,
        networkMode: `container:${sidecar}`,
        cmd: ['node', '-e', dial],
      });
      assert.equal(joined.exitCode, 0, joined.stderr);
      assert.equal(joined.stdout, 'hello from sidecar\n');
    } finally {
      await docker.removeContainer(sidecar, { force: true });
    }
  });

  it('without NET_ADMIN the same `ip addr add` is refused (the capability is what makes it work)', async () => {
    const result = await runContainer({
      image: runtime,
      user: '0',
      networkMode: 'none',
      cmd: ['ip', 'addr', 'add', '10.96.0.20/32', 'dev', 'lo'],
    });
    assert.notEqual(result.exitCode, 0);
    assert.match(result.stderr, /Operation not permitted/);
  });

  it('builds reproducibly: planning twice and loading again give the same image ID', async () => {
    const first = await planRuntimeImage();
    const second = await planRuntimeImage();
    assert.equal(first.plan.imageId, second.plan.imageId);
    assert.equal(first.tag, runtime);
    assert.equal((await docker.inspectImage(runtime))?.id, first.plan.imageId);

    const extraTag = `devbox-runtime:repro-${process.pid}`;
    try {
      const loaded = await docker.loadImage(second.plan.archive([extraTag]));
      assert.deepEqual(loaded, [extraTag]);
      assert.equal((await docker.inspectImage(extraTag))?.id, first.plan.imageId);
    } finally {
      await docker.removeImage(extraTag);
    }
    assert.ok(await docker.imageExists(runtime), 'removing the extra tag keeps the image');
  });

  it('is reused, not rebuilt, when already loaded', async () => {
    const again = await ensureRuntimeImage(docker);
    assert.equal(again.tag, runtime);
    assert.equal(again.reused, true);
  });
});

describe('busybox image', () => {
  it('runs sh -c "echo ok" and has the applets the tests use', async () => {
    const ok = await runContainer({ image: busybox, cmd: ['sh', '-c', 'echo ok'], networkMode: 'none' });
    assert.deepEqual(ok, { exitCode: 0, stdout: 'ok\n', stderr: '' });
    const applets = 'sh env cat nc wget nslookup sleep ls echo httpd ip';
    const which = await runContainer({
      image: busybox,
      networkMode: 'none',
      cmd: ['sh', '-c', `for a in ${applets}; do command -v $a || exit 1; done`],
    });
    assert.equal(which.exitCode, 0, which.stdout);
    assert.equal(which.stdout.trim().split('\n').length, applets.split(' ').length);
  });

  it('is reproducible', async () => {
    const a = await planBusyboxImage();
    const b = await planBusyboxImage();
    assert.equal(a.plan.imageId, b.plan.imageId);
    assert.equal(a.tag, busybox);
  });
});

describe('pause image', () => {
  it('runs as 65535, keeps running, and exits 0 at once on SIGTERM', async () => {
    const id = await startContainer({ image: pause, networkMode: 'none' });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const running = await docker.inspectContainer(id);
      assert.equal(running?.running, true);
      const { stdout } = await run('docker', ['top', id, '-o', 'pid,uid,comm']);
      assert.match(stdout, /65535\s+pause/);
      const started = Date.now();
      await docker.stopContainer(id, { timeoutSeconds: 10 });
      const elapsed = Date.now() - started;
      assert.ok(elapsed < 2000, `stopped after ${elapsed} ms (10 s would mean SIGTERM was ignored)`);
      assert.equal((await docker.inspectContainer(id))?.exitCode, 0);
    } finally {
      await docker.removeContainer(id, { force: true });
    }
  });

  it('compiles to the same image twice', async () => {
    const a = await planPauseImage();
    const b = await planPauseImage();
    assert.equal(a.plan.imageId, b.plan.imageId);
    assert.equal((await docker.inspectImage(pause))?.id, a.plan.imageId);
  });
});

describe('images-main', () => {
  it('prints the three tags as JSON on stdout, progress on stderr', async () => {
    const { stdout } = await run(process.execPath, ['dist/test/cluster/images-main.js'], {
      timeout: 120_000,
    });
    const tags = JSON.parse(stdout);
    assert.deepEqual(tags, { runtime, busybox, pause });
  });
});

describe('test labels', () => {
  it('find what the tests started', async () => {
    const id = await startContainer({ image: pause, networkMode: 'none' });
    try {
      const listed = await docker.listContainers({ labels: TEST_LABELS });
      assert.ok(listed.some((c) => c.id === id && c.labels['devbox.test'] === 'docker-integration'));
    } finally {
      await docker.removeContainer(id, { force: true });
    }
  });
});
