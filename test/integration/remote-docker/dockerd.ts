/**
 * A second Docker engine on this machine that behaves like a remote one: its
 * own data root, exec root, pidfile, socket, containerd and bridge (`docker1`,
 * which the cluster's firewall treats like docker0: the API server only), an
 * API on 127.0.0.1 only, and a file system view that is not the CLI's — it
 * runs in a mount namespace of its own whose /tmp is an empty tmpfs, so no
 * path the tests create under /tmp exists for it. The first engine (docker0)
 * is not touched; `stop` removes everything this started.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { promises as fs, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface SecondEngine {
  /** `tcp://127.0.0.1:<port>` */
  host: string;
  /** Environment that points the docker CLI (and devbox) at it. */
  env: NodeJS.ProcessEnv;
  bridge: string;
  /** `docker …` against this engine. */
  docker(args: string[], timeoutMs?: number): Promise<{ stdout: string; stderr: string; code: number }>;
  /** Copies images from the first engine. */
  load(...images: string[]): Promise<void>;
  stop(): Promise<void>;
}

const BRIDGE = 'docker1';
const BRIDGE_ADDRESS = '172.30.0.1/16';

async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000) {
  try {
    const { stdout, stderr } = await run(cmd, args, { env, timeout: timeoutMs, maxBuffer: 64 << 20 });
    return { stdout, stderr, code: 0 };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number };
    return { stdout: e.stdout ?? '', stderr: e.stderr ?? '', code: typeof e.code === 'number' ? e.code : 1 };
  }
}

/** Starts the engine and waits (at most `timeoutMs`) until it answers. */
export async function startSecondEngine(options: { timeoutMs?: number } = {}): Promise<SecondEngine> {
  const existing = await sh('ip', ['link', 'show', BRIDGE]);
  if (existing.code === 0) {
    throw new Error(
      `${BRIDGE} exists already (a second engine of another run?): remove it with \`ip link del ${BRIDGE}\``,
    );
  }
  const dir = await fs.mkdtemp('/var/tmp/devbox-dockerd-');
  const port = await freeLoopbackPort();
  const host = `tcp://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = { ...process.env, DOCKER_HOST: host };
  delete env.DOCKER_CONTEXT;
  let child: ChildProcess | undefined;
  let bridgeCreated = false;

  const stop = async () => {
    if (child && child.exitCode === null) {
      const containers = (await sh('docker', ['ps', '-aq'], env, 30_000)).stdout.split('\n').filter(Boolean);
      if (containers.length) await sh('docker', ['rm', '-f', ...containers], env, 60_000);
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    // The engine's mounts lived in its own namespace and are gone with it.
    await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
    if (bridgeCreated) await sh('ip', ['link', 'del', BRIDGE]);
  };

  try {
    for (const args of [
      ['link', 'add', BRIDGE, 'type', 'bridge'],
      ['addr', 'add', BRIDGE_ADDRESS, 'dev', BRIDGE],
      ['link', 'set', BRIDGE, 'up'],
    ]) {
      const result = await sh('ip', args);
      if (result.code !== 0) throw new Error(`ip ${args.join(' ')}: ${result.stderr}`);
      bridgeCreated = true;
    }
    const dockerd = [
      'dockerd',
      `--data-root=${join(dir, 'data')}`,
      `--exec-root=${join(dir, 'exec')}`,
      `--pidfile=${join(dir, 'dockerd.pid')}`,
      `--host=unix://${join(dir, 'docker.sock')}`,
      `--host=${host}`,
      `--bridge=${BRIDGE}`,
      // docker0's engine owns the iptables chains and the sysctls: leave them alone.
      '--iptables=false',
      '--ip-masq=false',
      '--ip-forward=false',
      '--cgroup-parent=/devbox-second-engine',
      '--containerd-namespace=devbox-second-engine',
      '--containerd-plugins-namespace=devbox-second-engine-plugins',
    ].join(' ');
    // Empty /tmp (the CLI's temporary files and test projects are invisible) and /run/containerd
    // (so the engine starts a containerd of its own instead of sharing the first one's).
    const script = `mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /run/containerd && exec ${dockerd}`;
    const log = openSync(join(dir, 'dockerd.log'), 'a');
    child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script], {
      stdio: ['ignore', log, log],
    });
    const deadline = Date.now() + (options.timeoutMs ?? 60_000);
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`dockerd exited: ${await fs.readFile(join(dir, 'dockerd.log'), 'utf8')}`);
      if ((await sh('docker', ['version', '--format', '{{.Server.Version}}'], env, 5000)).code === 0) break;
      if (Date.now() > deadline)
        throw new Error(
          `dockerd did not answer on ${host}: ${await fs.readFile(join(dir, 'dockerd.log'), 'utf8')}`,
        );
      await new Promise((r) => setTimeout(r, 300));
    }
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    host,
    env,
    bridge: BRIDGE,
    docker: (args, timeoutMs) => sh('docker', args, env, timeoutMs),
    async load(...images) {
      const saved = join(dir, 'images.tar');
      const save = await sh(
        'docker',
        ['save', '-o', saved, ...images],
        { ...process.env, DOCKER_HOST: '' },
        300_000,
      );
      if (save.code !== 0) throw new Error(`docker save: ${save.stderr}`);
      const loaded = await sh('docker', ['load', '-q', '-i', saved], env, 300_000);
      await fs.rm(saved, { force: true });
      if (loaded.code !== 0) throw new Error(`docker load: ${loaded.stderr}`);
    },
    stop,
  };
}
