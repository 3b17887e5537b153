/**
 * The engine client against the real Docker engine: how it finds the engine,
 * how it fails, and the calls devbox relies on.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import tar from 'tar-stream';
import { createDockerClient } from '../../../src/docker/client.js';
import { contextDirName, processEndpointInputs } from '../../../src/docker/endpoint.js';
import { ensureBusyboxImage, ensureRuntimeImage } from '../../../src/docker/runtime-image.js';
import { isDevboxError } from '../../../src/util/errors.js';
import {
  docker,
  readAll,
  removeTestContainers,
  requireStaticBusybox,
  runContainer,
  startContainer,
  TEST_LABELS,
  withTimeout,
} from './helpers.js';

let busybox: string;
let runtime: string;

before(async () => {
  await docker.ping();
  await requireStaticBusybox();
  busybox = (await ensureBusyboxImage(docker)).tag;
  runtime = (await ensureRuntimeImage(docker)).tag;
});

after(async () => {
  await removeTestContainers();
  for (const v of await docker.listVolumes({ labels: TEST_LABELS }))
    await docker.removeVolume(v.name, { force: true });
});

function tarOf(files: Record<string, string>): Readable {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mode: 0o644 }, content);
  pack.finalize();
  return Readable.from(pack);
}

async function untar(stream: Readable): Promise<Record<string, string>> {
  const extract = tar.extract();
  const files: Record<string, string> = {};
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry) chunks.push(chunk as Buffer);
      if (entry.header.type === 'file') files[entry.header.name] = Buffer.concat(chunks).toString();
    }
  })();
  for await (const chunk of stream) extract.write(chunk);
  extract.end(undefined);
  await done;
  return files;
}

/** A TCP listener on loopback that relays to the engine's unix socket: a tcp:// engine for the tests. */
async function tcpRelayToEngine(): Promise<{ server: Server; url: string }> {
  const host = docker.endpoint.host;
  assert.ok(host.startsWith('unix://'), `these tests relay to a unix socket engine, not ${host}`);
  const socketPath = host.slice('unix://'.length);
  const server = createServer((client) => {
    const upstream = connect(socketPath);
    client.pipe(upstream).pipe(client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, url: `tcp://127.0.0.1:${port}` };
}

// ssh2 comes with dockerode (docker-modem's ssh:// transport); it has no bundled types.
interface SshKey {
  type: string;
  getPublicSSH(): Buffer;
  verify(data: Buffer, signature: Buffer, hashAlgo?: string): boolean;
}
/** The fields of ssh2's authentication context the test server reads. */
interface SshAuthContext {
  method: string;
  username: string;
  key?: { algo: string; data: Buffer };
  signature?: Buffer;
  blob?: Buffer;
  hashAlgo?: string;
  accept(): void;
  reject(methods?: string[]): void;
}
interface Ssh2 {
  Server: new (
    config: { hostKeys: string[] },
    onClient: (client: import('node:events').EventEmitter) => void,
  ) => Server;
  utils: {
    generateKeyPairSync(type: 'ed25519'): { private: string; public: string };
    parseKey(key: string): SshKey;
  };
}
const ssh2 = createRequire(import.meta.url)('ssh2') as Ssh2;

/**
 * An SSH server on loopback that accepts one key for user `dev` and serves
 * `docker system dial-stdio` by relaying to the engine's socket, as a remote
 * Docker host reached with DOCKER_HOST=ssh://… does.
 */
async function sshDockerHost(
  userKey: SshKey,
): Promise<{ server: Server; port: number; execs: string[]; hostKey: string }> {
  const socketPath = docker.endpoint.host.slice('unix://'.length);
  const execs: string[] = [];
  const hostKeys = ssh2.utils.generateKeyPairSync('ed25519');
  const server = new ssh2.Server({ hostKeys: [hostKeys.private] }, (client) => {
    client.on('error', () => {});
    client.on('authentication', (ctx: SshAuthContext) => {
      const keyMatches =
        ctx.method === 'publickey' &&
        ctx.username === 'dev' &&
        ctx.key !== undefined &&
        ctx.key.algo === userKey.type &&
        Buffer.compare(ctx.key.data, userKey.getPublicSSH()) === 0;
      if (!keyMatches) return ctx.reject(['publickey']);
      if (ctx.signature && !userKey.verify(ctx.blob ?? Buffer.alloc(0), ctx.signature, ctx.hashAlgo))
        return ctx.reject();
      ctx.accept();
    });
    client.on('ready', () => {
      client.on('session', (acceptSession: () => import('node:events').EventEmitter) => {
        acceptSession().on(
          'exec',
          (accept: () => import('node:stream').Duplex, reject: () => void, info: { command: string }) => {
            execs.push(info.command);
            if (info.command !== 'docker system dial-stdio') return reject();
            const channel = accept();
            const upstream = connect(socketPath);
            channel.pipe(upstream).pipe(channel);
            upstream.on('error', () => channel.destroy());
            channel.on('close', () => upstream.destroy());
          },
        );
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  // The OpenSSH public line is `ssh-ed25519 <base64 blob>`: known_hosts holds the same.
  return { server, port: (server.address() as { port: number }).port, execs, hostKey: hostKeys.public };
}

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('finding the engine', () => {
  it('reaches a tcp:// DOCKER_HOST', async () => {
    const relay = await tcpRelayToEngine();
    try {
      const inputs = { ...processEndpointInputs(), env: { DOCKER_HOST: relay.url } };
      const client = createDockerClient({ inputs });
      assert.equal(client.endpoint.source, 'DOCKER_HOST');
      await client.ping();
      assert.equal((await client.version()).os, 'linux');
    } finally {
      relay.server.close();
    }
  });

  it('follows the current Docker context when DOCKER_HOST is unset', async () => {
    const relay = await tcpRelayToEngine();
    const configDir = await mkdtemp(join(tmpdir(), 'devbox-docker-config-'));
    try {
      const metaDir = join(configDir, 'contexts', 'meta', contextDirName('devbox-test'));
      await mkdir(metaDir, { recursive: true });
      await writeFile(join(configDir, 'config.json'), JSON.stringify({ currentContext: 'devbox-test' }));
      await writeFile(
        join(metaDir, 'meta.json'),
        JSON.stringify({
          Name: 'devbox-test',
          Metadata: {},
          Endpoints: { docker: { Host: relay.url, SkipTLSVerify: false } },
        }),
      );
      const inputs = { ...processEndpointInputs(), env: { DOCKER_CONFIG: configDir } };
      const client = createDockerClient({ inputs });
      assert.deepEqual(
        { host: client.endpoint.host, source: client.endpoint.source, context: client.endpoint.context },
        { host: relay.url, source: 'context', context: 'devbox-test' },
      );
      await client.ping();
      const images = await client.inspectImage(busybox);
      assert.ok(images?.repoTags.includes(busybox), 'same engine behind the context');
    } finally {
      relay.server.close();
      await rm(configDir, { recursive: true, force: true });
    }
  });

  it('reaches an ssh:// DOCKER_HOST through `docker system dial-stdio`, with the default key file when no agent runs', async () => {
    const keys = ssh2.utils.generateKeyPairSync('ed25519');
    const ssh = await sshDockerHost(ssh2.utils.parseKey(keys.public));
    const home = await mkdtemp(join(tmpdir(), 'devbox-ssh-home-'));
    try {
      await mkdir(join(home, '.ssh'), { mode: 0o700 });
      await writeFile(join(home, '.ssh', 'id_ed25519'), keys.private, { mode: 0o600 });
      const inputs = {
        ...processEndpointInputs(),
        home,
        env: { DOCKER_HOST: `ssh://dev@127.0.0.1:${ssh.port}` },
      };
      // A host whose key known_hosts does not hold is refused before any authentication.
      await assert.rejects(
        createDockerClient({ inputs }).ping({ timeoutMs: 5000 }),
        (err) => isDevboxError(err, 'NO_DOCKER') && /known_hosts/.test(err.message),
      );
      assert.equal(ssh.execs.length, 0, 'no command ran');
      await writeFile(join(home, '.ssh', 'known_hosts'), `[127.0.0.1]:${ssh.port} ${ssh.hostKey}\n`);
      const client = createDockerClient({ inputs });
      await client.ping();
      assert.ok(await client.imageExists(busybox), 'same engine behind ssh');
      assert.ok(ssh.execs.includes('docker system dial-stdio'));

      const stranger = createDockerClient({
        inputs: { ...inputs, env: { DOCKER_HOST: `ssh://mallory@127.0.0.1:${ssh.port}` } },
      });
      await assert.rejects(
        stranger.ping({ timeoutMs: 5000 }),
        (err) =>
          isDevboxError(err, 'NO_DOCKER') &&
          /ssh:\/\/mallory@/.test(err.message) &&
          /SSH_AUTH_SOCK/.test(err.hint ?? ''),
      );
    } finally {
      ssh.server.close();
      await rm(home, { recursive: true, force: true });
    }
  });

  it('fails with NO_DOCKER naming a missing socket and what to check', async () => {
    const client = createDockerClient({
      endpoint: { host: 'unix:///nonexistent/docker.sock', source: 'DOCKER_HOST' },
    });
    await assert.rejects(
      client.ping(),
      (err) =>
        isDevboxError(err, 'NO_DOCKER') &&
        err.message.includes('unix:///nonexistent/docker.sock (from DOCKER_HOST): no socket') &&
        /daemon running/.test(err.hint ?? ''),
    );
  });

  it('fails with NO_DOCKER when nothing listens at a tcp:// host', async () => {
    const port = await closedPort();
    const client = createDockerClient({
      endpoint: { host: `tcp://127.0.0.1:${port}`, source: 'DOCKER_HOST' },
    });
    await assert.rejects(
      client.ping({ timeoutMs: 5000 }),
      (err) => isDevboxError(err, 'NO_DOCKER') && /connection refused/.test(err.message),
    );
    await assert.rejects(client.listContainers(), (err) => isDevboxError(err, 'NO_DOCKER'));
  });
});

describe('containers', () => {
  it('create, start, list by label, wait and remove', async () => {
    const session = `s${process.pid}`;
    const id = await docker.createContainer({
      image: busybox,
      cmd: ['sh', '-c', 'sleep 0.3; exit 7'],
      networkMode: 'none',
      labels: { ...TEST_LABELS, 'devbox.session': session },
    });
    const listed = await docker.listContainers({ labels: { 'devbox.session': session } });
    assert.deepEqual(
      listed.map((c) => [c.id, c.state]),
      [[id, 'created']],
    );
    const exited = docker.waitContainer(id, { condition: 'next-exit' });
    await docker.startContainer(id);
    assert.equal(await withTimeout(exited, 10_000, 'wait'), 7);
    assert.equal((await docker.inspectContainer(id))?.exitCode, 7);
    await docker.stopContainer(id); // already stopped: not an error
    await docker.removeContainer(id);
    await docker.removeContainer(id); // already gone: not an error
    assert.equal(await docker.inspectContainer(id), undefined);
    assert.deepEqual(await docker.listContainers({ labels: { 'devbox.session': session } }), []);
  });

  it('reports a missing image as NOT_FOUND', async () => {
    await assert.rejects(
      docker.createContainer({ image: 'devbox-no-such-image:0', labels: TEST_LABELS }),
      (err) => isDevboxError(err, 'NOT_FOUND'),
    );
  });

  it('logs: stdout and stderr apart, and both streams end (with and without follow)', async () => {
    const id = await startContainer({
      image: busybox,
      networkMode: 'none',
      cmd: ['sh', '-c', 'echo out1; echo err1 >&2; sleep 0.5; echo out2; echo err2 >&2'],
    });
    try {
      const followed = await docker.logs(id, { follow: true });
      const [out, err] = await withTimeout(
        Promise.all([readAll(followed.stdout), readAll(followed.stderr)]),
        10_000,
        'followed logs to end with the container',
      );
      assert.equal(out, 'out1\nout2\n');
      assert.equal(err, 'err1\nerr2\n');
      const whole = await docker.logs(id);
      assert.deepEqual(await Promise.all([readAll(whole.stdout), readAll(whole.stderr)]), [
        'out1\nout2\n',
        'err1\nerr2\n',
      ]);
    } finally {
      await docker.removeContainer(id, { force: true });
    }
  });

  it('logs of a tty container come whole on stdout', async () => {
    const result = await startContainer({
      image: busybox,
      tty: true,
      networkMode: 'none',
      cmd: ['sh', '-c', 'echo hi; echo there >&2'],
    });
    try {
      await withTimeout(docker.waitContainer(result), 10_000, 'tty container');
      const { stdout, stderr } = await docker.logs(result);
      assert.equal((await readAll(stdout)).replace(/\r/g, ''), 'hi\nthere\n');
      assert.equal(await readAll(stderr), '');
    } finally {
      await docker.removeContainer(result, { force: true });
    }
  });

  it('putArchive and getArchive carry files as tar streams', async () => {
    const id = await docker.createContainer({
      image: busybox,
      cmd: ['sleep', '30'],
      networkMode: 'none',
      labels: TEST_LABELS,
    });
    try {
      await docker.putArchive(id, '/tmp', tarOf({ token: 'secret-token\n', 'ca/ca.crt': 'CERT\n' }));
      const files = await untar(await docker.getArchive(id, '/tmp'));
      assert.equal(files['tmp/token'], 'secret-token\n');
      assert.equal(files['tmp/ca/ca.crt'], 'CERT\n');
      await assert.rejects(docker.getArchive(id, '/nope'), (err) => isDevboxError(err, 'NOT_FOUND'));
    } finally {
      await docker.removeContainer(id, { force: true });
    }
  });

  it('named volumes: files put through one container are seen by another', async () => {
    const name = `devbox-test-files-${process.pid}`;
    await docker.createVolume(name, { labels: TEST_LABELS });
    try {
      const volumes = await docker.listVolumes({ labels: TEST_LABELS });
      assert.ok(volumes.some((v) => v.name === name && v.labels['devbox.test'] === 'docker-integration'));
      const writer = await docker.createContainer({
        image: busybox,
        networkMode: 'none',
        labels: TEST_LABELS,
        mounts: [{ type: 'volume', source: name, target: '/data' }],
      });
      await docker.putArchive(writer, '/data', tarOf({ 'config.yaml': 'answer: 42\n' }));
      await docker.removeContainer(writer);
      const reader = await runContainer({
        image: busybox,
        networkMode: 'none',
        mounts: [{ type: 'volume', source: name, target: '/etc/app', readOnly: true }],
        cmd: ['cat', '/etc/app/config.yaml'],
      });
      assert.equal(reader.stdout, 'answer: 42\n');
    } finally {
      await docker.removeVolume(name);
      await docker.removeVolume(name); // already gone: not an error
    }
  });
});

describe('building images', () => {
  it('surfaces a failing step (reported inside the progress stream) as an error', async () => {
    const context = tarOf({ Dockerfile: `FROM ${busybox}\nRUN echo building && false\n` });
    const lines: string[] = [];
    await assert.rejects(
      docker.buildImage(context, { tag: `devbox-test-fail:${process.pid}`, onOutput: (l) => lines.push(l) }),
      (err) => isDevboxError(err, 'BAD_INPUT') && /returned a non-zero code: 1/.test(err.message),
    );
    assert.ok(
      lines.some((l) => l.includes('building')),
      'build output reached onOutput',
    );
  });

  it('builds containers/agent/Dockerfile on the local runtime image and the agent bundle starts', async () => {
    const { readFile } = await import('node:fs/promises');
    const dockerfile = await readFile('containers/agent/Dockerfile', 'utf8');
    const context = tarOf({
      Dockerfile: dockerfile,
      'dist/bundle/agent.mjs': "console.log('agent', process.getuid());\n",
    });
    const tag = `devbox-test-agent:${process.pid}`;
    try {
      const { imageId } = await docker.buildImage(context, { tag, buildArgs: { NODE_IMAGE: runtime } });
      assert.equal((await docker.inspectImage(tag))?.id, imageId);
      const result = await runContainer({ image: tag, networkMode: 'none' });
      assert.equal(result.stdout, 'agent 1000\n');
    } finally {
      await docker.removeImage(tag, { force: true });
    }
  });
});
