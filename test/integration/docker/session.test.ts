/**
 * Sessions against the real engine with the registry-free runtime image: the
 * sidecar (a stand-in that adds a cluster address to lo and listens there)
 * owns the network; the service joins it and sees its DNS settings, address
 * and published ports; failures leave nothing behind.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  ensureBusyboxImage,
  ensurePauseImage,
  ensureRuntimeImage,
} from '../../../src/docker/runtime-image.js';
import { createSession, findSessions, removeSession } from '../../../src/docker/session-containers.js';
import { updateFiles } from '../../../src/docker/session-files.js';
import { followLogs, waitExit } from '../../../src/docker/session-logs.js';
import { waitSidecarReady } from '../../../src/docker/session-ready.js';
import { newSessionId, SESSION_LABELS, type SessionSpec } from '../../../src/docker/session-spec.js';
import { isDevboxError } from '../../../src/util/errors.js';
import {
  docker,
  readAll,
  removeTestContainers,
  requireStaticBusybox,
  startContainer,
  TEST_LABELS,
  withTimeout,
} from './helpers.js';

const CLUSTER_IP = '10.96.0.20';
const CLUSTER_PORT = 8080;
const SERVICE_PORT = 3000;

/** Stand-in sidecar: adds the address to lo, listens on it, and reports itself ready once it answers. */
const STAND_IN = `
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
const status = process.argv[2] === 'status';
const config = JSON.parse(readFileSync(status ? process.argv[3] : process.argv[2], 'utf8'));
if (status) {
  const doc = (up) => JSON.stringify({ version: 1, namespace: 'shop', tunnels: up ? [{ pod: 'stand-in', state: 'up' }] : [],
    watches: { services: { synced: true }, endpointSlices: { synced: true } }, addresses: [], lastErrors: [] });
  const socket = net.connect(config.port, config.address);
  socket.on('connect', () => { process.stdout.write(doc(true)); socket.destroy(); });
  socket.on('error', () => process.stdout.write(doc(false)));
} else {
  execFileSync('/usr/sbin/ip', ['addr', 'add', config.address + '/32', 'dev', 'lo']);
  net.createServer((s) => s.on('error', () => {}).end('hello from ' + config.address + '\\n')).listen(config.port, config.address, () => console.log('listening'));
  process.on('SIGTERM', () => process.exit(0));
}
`;

/** Service: an HTTP server reporting what the container sees. */
const SERVICE = `
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const paths = JSON.parse(process.env.FILES);
const dial = () => new Promise((resolve) => {
  const s = net.connect(${CLUSTER_PORT}, '${CLUSTER_IP}');
  let data = '';
  s.on('data', (d) => (data += d));
  s.on('end', () => resolve(data));
  s.on('error', (e) => resolve('error: ' + e.message));
});
const read = (p) => { try { return fs.readFileSync(p, 'utf8'); } catch (e) { return 'error: ' + e.code; } };
require('node:http').createServer(async (req, res) => {
  const files = {};
  for (const p of paths) {
    try { const st = fs.statSync(p); files[p] = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, content: read(p) }; }
    catch (e) { files[p] = { error: e.code }; }
  }
  res.end(JSON.stringify({ resolv: read('/etc/resolv.conf'), hosts: read('/etc/hosts'), hostname: os.hostname(),
    uid: process.getuid(), greeting: process.env.GREETING, cluster: await dial(), files, mounted: read('/data/hello.txt') }));
}).listen(${SERVICE_PORT}, '0.0.0.0', () => console.log('service up'));
process.on('SIGTERM', () => process.exit(0));
`;

let runtime: string;
let dataDir: string;

before(async () => {
  await docker.ping();
  runtime = (await ensureRuntimeImage(docker)).tag;
  dataDir = await mkdtemp(join(tmpdir(), 'devbox-session-'));
  await writeFile(join(dataDir, 'hello.txt'), 'from the host\n');
  await chmod(dataDir, 0o755);
});

after(async () => {
  await removeTestContainers();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function workloadName(): string {
  return `itest-${newSessionId().slice(0, 6)}`;
}

const INJECTED = {
  config: '/etc/devbox-test/config/app.yaml',
  token: '/var/run/secrets/kubernetes.io/serviceaccount/token',
  secret: '/etc/devbox-test/secret/key',
};

function sessionSpec(workload: string, overrides: { hostPort?: number } = {}): SessionSpec {
  const hostPort = overrides.hostPort;
  return {
    session: { id: newSessionId(), workload, namespace: 'shop', context: 'itest' },
    labels: { ...TEST_LABELS, 'devbox.extra': 'yes' },
    sidecar: {
      image: runtime,
      bundle: STAND_IN,
      config: { address: CLUSTER_IP, port: CLUSTER_PORT },
      files: [{ path: '/devbox/token', content: 'sidecar-token-1', mode: 0o600 }],
      dnsSearch: ['shop.svc.cluster.local', 'svc.cluster.local', 'cluster.local'],
      dnsOptions: ['ndots:5'],
      extraHosts: ['api.example.test:127.0.0.9'],
      hostname: `${workload}-7d9c-abcde`,
      ports: hostPort ? [{ containerPort: SERVICE_PORT, hostPort, hostIp: '127.0.0.1' }] : [],
    },
    service: {
      image: runtime,
      cmd: ['node', '-e', SERVICE],
      env: {
        GREETING: 'hello=world',
        FILES: JSON.stringify(Object.values(INJECTED)),
      },
      user: '1000',
      workingDir: '/tmp',
      mounts: [{ source: dataDir, target: '/data', readOnly: true }],
      files: [
        { path: INJECTED.config, content: 'level: debug\n' },
        { path: INJECTED.token, content: 'token-1', mode: 0o600, uid: 1000, gid: 1000 },
        { path: INJECTED.secret, content: Buffer.from('s3cret'), mode: 0o400 },
      ],
    },
  };
}

/** GET over node:http: undici's fetch never settles when docker-proxy closes a connection it accepted. */
function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 3000 }, (res) => {
      readAll(res).then(resolve, reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

async function fetchReport(port: number): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      return JSON.parse(await httpGet(port)) as Record<string, unknown>;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

async function sessionContainers(sessionId: string) {
  return docker.listContainers({ labels: { [SESSION_LABELS.session]: sessionId }, all: true });
}

describe('createSession', () => {
  it('joins the service to the sidecar: cluster address, DNS settings, files, env, mounts, published port', async () => {
    const hostPort = await freePort();
    const spec = sessionSpec(workloadName(), { hostPort });
    const started = Date.now();
    const session = await createSession(docker, spec, {
      beforeService: (sidecar) =>
        waitSidecarReady(docker, sidecar.id, { timeoutMs: 15_000, intervalMs: 100 }).then(() => {}),
    });
    const createdMs = Date.now() - started;
    try {
      const report = (await fetchReport(hostPort)) as {
        resolv: string;
        hosts: string;
        hostname: string;
        uid: number;
        greeting: string;
        cluster: string;
        mounted: string;
        files: Record<string, { mode: number; uid: number; gid: number; content: string }>;
      };
      assert.equal(
        report.cluster,
        `hello from ${CLUSTER_IP}\n`,
        'the joined service reaches the sidecar listener',
      );
      assert.match(report.resolv, /^nameserver 127\.0\.0\.1$/m);
      assert.match(report.resolv, /^search shop\.svc\.cluster\.local svc\.cluster\.local cluster\.local$/m);
      assert.match(report.resolv, /^options ndots:5$/m);
      assert.match(report.hosts, /127\.0\.0\.9\s+api\.example\.test/);
      assert.equal(report.hostname, `${spec.session.workload}-7d9c-abcde`);
      assert.equal(report.uid, 1000);
      assert.equal(report.greeting, 'hello=world');
      assert.equal(report.mounted, 'from the host\n');
      assert.deepEqual(report.files[INJECTED.config], {
        mode: 0o644,
        uid: 0,
        gid: 0,
        content: 'level: debug\n',
      });
      assert.deepEqual(report.files[INJECTED.token], {
        mode: 0o600,
        uid: 1000,
        gid: 1000,
        content: 'token-1',
      });
      assert.deepEqual(report.files[INJECTED.secret], {
        mode: 0o400,
        uid: 0,
        gid: 0,
        content: 'error: EACCES',
      });

      const sidecar = await docker.inspectContainer(session.sidecar.id);
      const service = await docker.inspectContainer(session.service.id);
      assert.equal(sidecar?.name, `devbox-${spec.session.workload}-sidecar`);
      assert.equal(service?.name, `devbox-${spec.session.workload}`);
      assert.equal(service?.networkMode, `container:${session.sidecar.id}`);
      assert.equal(sidecar?.labels[SESSION_LABELS.role], 'sidecar');
      assert.equal(service?.labels[SESSION_LABELS.role], 'service');
      assert.equal(service?.labels['devbox.extra'], 'yes');

      const [found] = await findSessions(docker, { sessionId: spec.session.id });
      assert.equal(found?.state, 'running');
      assert.equal(found?.workload, spec.session.workload);
      assert.equal(found?.namespace, 'shop');
      assert.equal(found?.context, 'itest');
      assert.equal(found?.sidecar?.id, session.sidecar.id);
      assert.equal(found?.service?.id, session.service.id);
      process.stderr.write(`# session created and ready in ${createdMs} ms\n`);
    } finally {
      const removed = await removeSession(docker, spec.session.id, { timeoutSeconds: 5 });
      assert.equal(removed.containers.length, 2);
    }
    assert.deepEqual(await sessionContainers(spec.session.id), []);
    assert.deepEqual(await removeSession(docker, spec.session.id), { containers: [], volumes: [] });
    assert.deepEqual(await findSessions(docker, { sessionId: spec.session.id }), []);
  });

  it('a host port in use is a CONFLICT naming it, and leaves no container', async () => {
    const holder: Server = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as { port: number }).port;
    const spec = sessionSpec(workloadName(), { hostPort: port });
    try {
      await assert.rejects(createSession(docker, spec), (err) => {
        assert.ok(isDevboxError(err, 'CONFLICT'), String(err));
        assert.match(err.message, new RegExp(`${port}`));
        assert.match(err.hint ?? '', /-p <free port>:3000/);
        return true;
      });
    } finally {
      holder.close();
    }
    assert.deepEqual(await sessionContainers(spec.session.id), []);
  });

  it('a port another session holds is a CONFLICT too', async () => {
    const port = await freePort();
    const first = sessionSpec(workloadName(), { hostPort: port });
    const second = sessionSpec(workloadName(), { hostPort: port });
    await createSession(docker, first);
    try {
      await assert.rejects(createSession(docker, second), (err) => {
        assert.ok(isDevboxError(err, 'CONFLICT'), String(err));
        assert.match(err.message, new RegExp(`${port}`));
        return true;
      });
      assert.deepEqual(await sessionContainers(second.session.id), []);
    } finally {
      await removeSession(docker, first.session.id, { timeoutSeconds: 2 });
    }
  });

  it('a missing image is NOT_FOUND naming it, and nothing is created', async () => {
    const spec = sessionSpec(workloadName());
    spec.service.image = 'devbox-test-missing:nope';
    await assert.rejects(createSession(docker, spec), (err) => {
      assert.ok(isDevboxError(err, 'NOT_FOUND'), String(err));
      assert.match(err.message, /devbox-test-missing:nope/);
      assert.match(err.hint ?? '', /--image/);
      assert.match(err.hint ?? '', /--build/);
      return true;
    });
    assert.deepEqual(await sessionContainers(spec.session.id), []);
  });

  it('a name held by a container that is not devbox’s is a CONFLICT and that container is left alone', async () => {
    const spec = sessionSpec(workloadName());
    const name = `devbox-${spec.session.workload}-sidecar`;
    const foreign = await docker.createContainer({ name, image: runtime, labels: TEST_LABELS });
    try {
      await assert.rejects(createSession(docker, spec), (err) => {
        assert.ok(isDevboxError(err, 'CONFLICT'), String(err));
        assert.match(err.message, new RegExp(`${name}.*not made by devbox`));
        return true;
      });
      assert.ok(await docker.inspectContainer(foreign), 'the foreign container still exists');
      assert.deepEqual(await sessionContainers(spec.session.id), []);
    } finally {
      await docker.removeContainer(foreign, { force: true });
    }
  });

  it('an existing session of the same workload is a CONFLICT unless replaced', async () => {
    const workload = workloadName();
    const first = sessionSpec(workload);
    // docker-init as PID 1: a SIGTERM that arrives before node installed its handler still stops it.
    first.service.init = true;
    await createSession(docker, first);
    const second = sessionSpec(workload);
    try {
      await assert.rejects(createSession(docker, second), (err) => {
        assert.ok(isDevboxError(err, 'CONFLICT'), String(err));
        assert.match(err.hint ?? '', new RegExp(`devbox down ${workload}`));
        return true;
      });
      const replaced = await createSession(docker, second, { replace: true });
      assert.deepEqual(await sessionContainers(first.session.id), []);
      assert.equal((await sessionContainers(second.session.id)).length, 2);
      assert.ok(replaced.service.id);
    } finally {
      await removeSession(docker, first.session.id, { timeoutSeconds: 2 });
      await removeSession(docker, second.session.id, { timeoutSeconds: 2 });
    }
  });

  it('a service command the image lacks is BAD_INPUT, and the started sidecar is removed', async () => {
    const spec = sessionSpec(workloadName());
    spec.service.cmd = ['/no/such/binary'];
    await assert.rejects(createSession(docker, spec), (err) => {
      assert.ok(isDevboxError(err, 'BAD_INPUT'), String(err));
      assert.match(err.message, /\/no\/such\/binary/);
      return true;
    });
    assert.deepEqual(await sessionContainers(spec.session.id), []);
  });

  it('a failing beforeService step and an abort both roll back', async () => {
    const spec = sessionSpec(workloadName());
    await assert.rejects(
      createSession(docker, spec, {
        beforeService: async () => {
          throw new Error('not today');
        },
      }),
      /not today/,
    );
    assert.deepEqual(await sessionContainers(spec.session.id), []);

    const aborted = sessionSpec(workloadName());
    const controller = new AbortController();
    await assert.rejects(
      createSession(docker, aborted, {
        signal: controller.signal,
        beforeService: async () => controller.abort(new Error('interrupted')),
      }),
      /interrupted/,
    );
    assert.deepEqual(await sessionContainers(aborted.session.id), []);
  });
});

describe('updateFiles', () => {
  it('replaces files by rename (mv, else node), and overwrites where the image has neither', async () => {
    await requireStaticBusybox();
    const busybox = (await ensureBusyboxImage(docker)).tag;
    const spec = sessionSpec(workloadName());
    spec.service.image = busybox;
    spec.service.cmd = ['sleep', '600'];
    spec.service.user = '0';
    spec.service.init = true;
    const session = await createSession(docker, spec);
    try {
      const inode = async () =>
        (await docker.exec(session.service.id, ['stat', '-c', '%i %a %u', INJECTED.token])).stdout.trim();
      const before = await inode();
      const result = await updateFiles(docker, session.service.id, [
        { path: INJECTED.token, content: 'token-2', mode: 0o600, uid: 1000, gid: 1000 },
      ]);
      assert.deepEqual(result, { atomic: true, files: 1 });
      const afterUpdate = await inode();
      assert.notEqual(
        afterUpdate.split(' ')[0],
        before.split(' ')[0],
        'a new inode: the file was renamed over',
      );
      assert.equal(afterUpdate.split(' ').slice(1).join(' '), '600 1000');
      const cat = await docker.exec(session.service.id, ['cat', INJECTED.token]);
      assert.equal(cat.stdout, 'token-2');
      const listing = await docker.exec(session.service.id, [
        'ls',
        '-a',
        '/var/run/secrets/kubernetes.io/serviceaccount',
      ]);
      assert.doesNotMatch(listing.stdout, /devbox-new/);

      // The runtime image has no mv but node: still a rename.
      const first = await docker.exec(session.sidecar.id, [
        'node',
        '-p',
        'require("fs").readFileSync("/devbox/token","utf8")',
      ]);
      assert.equal(first.stdout.trim(), 'sidecar-token-1');
      const token = { path: '/devbox/token', content: 'sidecar-token-2', mode: 0o600 };
      assert.deepEqual(await updateFiles(docker, session.sidecar.id, [token]), { atomic: true, files: 1 });
      const read = await docker.exec(session.sidecar.id, [
        'node',
        '-e',
        'const fs=require("fs");console.log(fs.readFileSync("/devbox/token","utf8"), (fs.statSync("/devbox/token").mode&0o777).toString(8), fs.readdirSync("/devbox").join(","))',
      ]);
      assert.equal(read.stdout.trim(), 'sidecar-token-2 600 config.json,sidecar.mjs,token');

      // An image with neither mv nor node gets a direct overwrite.
      const pause = await startContainer({ image: (await ensurePauseImage(docker)).tag });
      try {
        assert.deepEqual(await updateFiles(docker, pause, [{ path: '/etc/x/extra.txt', content: 'x' }]), {
          atomic: false,
          files: 1,
        });
        assert.equal(
          await readAll(await docker.getArchive(pause, '/etc/x/extra.txt')).then((t) => t.includes('x')),
          true,
        );
      } finally {
        await docker.removeContainer(pause, { force: true });
      }
    } finally {
      await removeSession(docker, spec.session.id, { timeoutSeconds: 2 });
    }
  });
});

describe('followLogs and waitExit', () => {
  it('copy the output until the container exits and report its code', async () => {
    const spec = sessionSpec(workloadName());
    spec.service.cmd = ['node', '-e', 'console.log("out line"); console.error("err line"); process.exit(7)'];
    const session = await createSession(docker, spec);
    try {
      const { PassThrough } = await import('node:stream');
      const out = new PassThrough();
      const err = new PassThrough();
      const texts = Promise.all([readAll(out), readAll(err)]);
      await withTimeout(followLogs(docker, session.service.id, out, err), 15_000, 'followLogs');
      assert.equal(out.writableEnded, false, 'followLogs never ends its outputs');
      out.end();
      err.end();
      const [stdout, stderr] = await texts;
      assert.equal(stdout, 'out line\n');
      assert.equal(stderr, 'err line\n');
      assert.equal(await withTimeout(waitExit(docker, session.service.id), 10_000, 'waitExit'), 7);
      const [found] = await findSessions(docker, { sessionId: spec.session.id });
      assert.equal(found?.state, 'degraded');
    } finally {
      await removeSession(docker, spec.session.id, { timeoutSeconds: 2 });
    }
  });

  it('stop when the signal aborts', async () => {
    const spec = sessionSpec(workloadName());
    const session = await createSession(docker, spec);
    try {
      const { PassThrough } = await import('node:stream');
      const controller = new AbortController();
      const following = followLogs(
        docker,
        session.service.id,
        new PassThrough(),
        new PassThrough(),
        controller.signal,
      );
      const waiting = waitExit(docker, session.service.id, controller.signal);
      setTimeout(() => controller.abort(new Error('stop')), 300);
      await withTimeout(following, 5000, 'followLogs after abort');
      await assert.rejects(withTimeout(waiting, 5000, 'waitExit after abort'), /stop/);
      assert.equal((await docker.inspectContainer(session.service.id))?.running, true);
    } finally {
      await removeSession(docker, spec.session.id, { timeoutSeconds: 2 });
    }
  });
});
