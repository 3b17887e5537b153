/**
 * A wide-area network between this machine's clients and the local cluster's API server: one
 * toxiproxy in front of the API server, with half the round trip added in each direction and
 * each direction held to a rate. Every client given {@link WanProxy.kubeconfig} (kubectl,
 * the devbox CLI and, through the session it starts, the sidecar) reaches the API server only
 * through it, and so do the kubelet port-forwards the API server relays for them.
 *
 * The proxy listens on the Docker bridge's gateway address, which both the host and a container
 * reach; the kubeconfig names that address with `tls-server-name: 127.0.0.1` (a name the API
 * server's certificate holds). toxiproxy is built once from the Go module proxy into
 * ~/.cache/devbox and reused.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';

const run = promisify(execFile);

export const TOXIPROXY_VERSION = 'v2.12.0';
const TOXIPROXY_MODULE = 'github.com/Shopify/toxiproxy/v2/cmd/server';

export interface WanSettings {
  rttMs: number;
  rateMbps: number;
}

export interface WanProxy {
  settings: WanSettings;
  /** The proxy's address as clients dial it. */
  listen: string;
  /** A copy of the cluster's kubeconfig whose server is the proxy. */
  kubeconfig: string;
  /** Stops the proxy and removes its kubeconfig. */
  stop(): Promise<void>;
}

/** Reads `--rtt-ms` and `--rate-mbps`; an unusable value is refused naming the flag. */
export function wanSettings(flag: (name: string) => string | undefined): WanSettings {
  const positive = (name: string, fallback: number, max: number) => {
    const text = flag(name);
    const value = text === undefined ? fallback : Number(text);
    if (!Number.isFinite(value) || value <= 0 || value > max) {
      throw new Error(`--${name}=${text}: give a number above 0 and at most ${max}`);
    }
    return value;
  };
  return { rttMs: positive('rtt-ms', 50, 10_000), rateMbps: positive('rate-mbps', 1000, 100_000) };
}

/** The toxiproxy server binary, built with `go install` when not yet in the cache. */
export async function toxiproxyBinary(say: (text: string) => void): Promise<string> {
  const cache = join(homedir(), '.cache', 'devbox');
  const binary = join(cache, `toxiproxy-server-${TOXIPROXY_VERSION}`);
  if (existsSync(binary)) return binary;
  mkdirSync(cache, { recursive: true });
  const gobin = mkdtempSync(join(cache, 'toxiproxy-build-'));
  say(`Building toxiproxy ${TOXIPROXY_VERSION} with go install (once; cached as ${binary})`);
  try {
    await run('go', ['install', `${TOXIPROXY_MODULE}@${TOXIPROXY_VERSION}`], {
      env: { ...process.env, GOBIN: gobin, CGO_ENABLED: '0' },
      timeout: 15 * 60_000,
      maxBuffer: 16 << 20,
    });
    renameSync(join(gobin, 'server'), binary);
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    const why = e.code === 'ENOENT' ? 'the go command is not installed' : (e.stderr ?? e.message).trim();
    throw new Error(`could not build toxiproxy (${TOXIPROXY_MODULE}@${TOXIPROXY_VERSION}): ${why}`);
  } finally {
    rmSync(gobin, { recursive: true, force: true });
  }
  return binary;
}

/** The Docker bridge's gateway: an address of this host that containers reach. */
async function bridgeGateway(): Promise<string> {
  const { stdout } = await run('docker', [
    'network',
    'inspect',
    'bridge',
    '-f',
    '{{range .IPAM.Config}}{{.Gateway}} {{end}}',
  ]);
  const gateway = stdout
    .trim()
    .split(/\s+/)
    .find((a) => /^\d+\.\d+\.\d+\.\d+$/.test(a));
  if (!gateway) throw new Error(`the Docker bridge network has no IPv4 gateway: ${stdout.trim()}`);
  return gateway;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface KubeconfigDoc {
  clusters?: { name: string; cluster: Record<string, unknown> }[];
}

/** A running toxiproxy server. */
export interface Toxiproxy {
  /** A proxy from `listen` (port 0: any) to `upstream` on the WAN of `settings`; resolves with its address. */
  link(name: string, listen: string, upstream: string, settings: WanSettings): Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts toxiproxy (see {@link toxiproxyBinary}) with its API on a free loopback port. It runs in a
 * process group of its own, so that Ctrl-C does not end it before the caller's clean-up has gone
 * through it, and it is killed when this process exits, whichever way.
 */
export async function startToxiproxy(say: (text: string) => void): Promise<Toxiproxy> {
  const binary = await toxiproxyBinary(say);
  const apiPort = await freePort();
  const child: ChildProcess = spawn(binary, ['-host', '127.0.0.1', '-port', String(apiPort)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const onExit = () => child.kill('SIGKILL');
  process.once('exit', onExit);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    }
    process.off('exit', onExit);
  };
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`http://127.0.0.1:${apiPort}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`toxiproxy ${method} ${path}: ${response.status} ${text}`);
    return JSON.parse(text || '{}') as Record<string, unknown>;
  };
  const link = async (name: string, listen: string, upstream: string, settings: WanSettings) => {
    const proxy = await api('POST', '/proxies', { name, listen, upstream });
    // Half the round trip each way; the rate in KB/s (1 KB = 1000 bytes) each way.
    const halfRtt = Math.round(settings.rttMs / 2);
    const rateKBps = Math.round((settings.rateMbps * 1_000_000) / 8 / 1000);
    for (const stream of ['downstream', 'upstream']) {
      await api('POST', `/proxies/${name}/toxics`, {
        name: `latency_${stream}`,
        type: 'latency',
        stream,
        attributes: { latency: halfRtt, jitter: 0 },
      });
      await api('POST', `/proxies/${name}/toxics`, {
        name: `bandwidth_${stream}`,
        type: 'bandwidth',
        stream,
        attributes: { rate: rateKBps },
      });
    }
    return String(proxy.listen);
  };
  try {
    await waitForApi(
      () => api('GET', '/version'),
      () => stderr,
      child,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { link, stop };
}

/**
 * Starts toxiproxy in front of the API server named by `kubeconfig` and writes a kubeconfig that
 * goes through it.
 */
export async function startWanProxy(
  kubeconfig: string,
  readKubeconfig: () => string,
  settings: WanSettings,
  say: (text: string) => void,
): Promise<WanProxy> {
  const doc = parse(readKubeconfig()) as KubeconfigDoc;
  const clusters = doc.clusters ?? [];
  if (clusters.length !== 1) throw new Error(`${kubeconfig}: expected one cluster, found ${clusters.length}`);
  const cluster = clusters[0]!.cluster;
  const server = new URL(String(cluster.server));
  const host = server.hostname.replace(/^\[|\]$/g, '');
  const upstream = `${host.includes(':') ? `[${host}]` : host}:${server.port || 443}`;
  const gateway = await bridgeGateway();
  const toxiproxy = await startToxiproxy(say);
  const dir = mkdtempSync(join(tmpdir(), 'devbox-wan-'));
  const onExit = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', onExit);
  const stop = async () => {
    await toxiproxy.stop();
    onExit();
    process.off('exit', onExit);
  };
  try {
    const listen = await toxiproxy.link('apiserver', `${gateway}:0`, upstream, settings);
    cluster.server = `https://${listen}`;
    cluster['tls-server-name'] = host;
    const path = join(dir, 'kubeconfig');
    writeFileSync(path, stringify(doc), { mode: 0o600 });
    say(
      `WAN proxy ${listen} → ${upstream}: ${settings.rttMs} ms round trip, ${settings.rateMbps} Mbit/s each way`,
    );
    return { settings, listen, kubeconfig: path, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function waitForApi(
  probe: () => Promise<unknown>,
  stderr: () => string,
  child: ChildProcess,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await probe();
      return;
    } catch (err) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new Error(`toxiproxy did not start: ${(err as Error).message} ${stderr()}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
