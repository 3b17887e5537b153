/**
 * `npm run bench:portforward [-- --json] [--mb=N]`: the port-forward transports alone, without the
 * tunnel on top: one N MB stream pod → host and host → pod through `kubectl port-forward`, and
 * through devbox's client over SPDY and over WebSocket, with the client process's CPU time per GB.
 * Shows what the transport choice is worth on this cluster. Progress goes to stderr.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { openPortForward, type PortForwardTransport } from '../../src/tunnel/portforward.js';
import { clusterClient, portForwardAccess, readyPod } from '../integration/kube/pod-probe.js';
import { apply, clusterDir, kubeconfig, nodePodManifest, testNamespace } from '../support/cluster.js';

const MB = 1024 * 1024;
const size = Number(process.argv.find((a) => a.startsWith('--mb='))?.slice(5) ?? 512) * MB;
const json = process.argv.includes('--json');
const say = (text: string) => process.stderr.write(`${text}\n`);

const SINK = 7200;
const SOURCE = 7201;
/**
 * SINK reads a first line with N, then N bytes, and answers N (port-forward passes no half-close
 * to the pod, so the count cannot wait for the end); SOURCE writes N bytes (N from the first line).
 */
const SERVER = `const net = require('node:net');
net.createServer((s) => {
  let want = -1, got = 0, head = '';
  s.on('data', (d) => {
    if (want < 0) { head += d.toString('latin1'); const i = head.indexOf('\\n'); if (i < 0) return; want = Number(head.slice(0, i)); got = head.length - i - 1; }
    else got += d.length;
    if (got >= want) s.end(String(got));
  });
  s.on('error', () => {});
}).listen(${SINK});
net.createServer((s) => {
  const block = Buffer.alloc(1 << 20, 7);
  s.once('data', (d) => {
    let left = Number(d.toString().trim());
    const pump = () => { while (left > 0) { const c = left >= block.length ? block : block.subarray(0, left); left -= c.length; if (!s.write(c)) return s.once('drain', pump); } s.end(); };
    pump();
  });
  s.on('error', () => {});
}).listen(${SOURCE});`;

interface Figures {
  mbps: number;
  cpuMsPerGB?: number;
}

/** Moves `size` bytes one way over `stream`; resolves with the milliseconds it took. */
async function transfer(stream: Duplex, direction: 'download' | 'upload'): Promise<number> {
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    stream.on('error', reject);
    if (direction === 'download') {
      let got = 0;
      stream.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= size) resolve();
      });
      stream.write(`${size}\n`);
      return;
    }
    let reply = '';
    stream.on('data', (d: Buffer) => {
      reply += d.toString();
    });
    stream.on('end', () => (Number(reply) === size ? resolve() : reject(new Error(`sink got ${reply}`))));
    stream.write(`${size}\n`);
    const block = Buffer.alloc(MB, 1);
    let left = size;
    const pump = (): void => {
      while (left > 0) {
        const chunk = left >= block.length ? block : block.subarray(0, left);
        left -= chunk.length;
        if (!stream.write(chunk)) {
          stream.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
  const ms = performance.now() - started;
  stream.destroy();
  return ms;
}

const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/** CPU time (user + system) a child process has used, from /proc. */
function childCpuMs(child: ChildProcess): number {
  const fields = readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function kubectlPortForward(
  ns: string,
  pod: string,
): Promise<{ child: ChildProcess; ports: number[] }> {
  const child = spawn(
    `${clusterDir}/bin/kubectl`,
    ['--kubeconfig', kubeconfig, '-n', ns, 'port-forward', pod, `:${SINK}`, `:${SOURCE}`],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const ports = await new Promise<number[]>((resolve, reject) => {
    let text = '';
    child.stdout!.on('data', (d: Buffer) => {
      text += d.toString();
      const found = [...text.matchAll(/127\.0\.0\.1:(\d+) ->/g)].map((m) => Number(m[1]));
      if (found.length === 2) resolve(found);
    });
    child.on('exit', () => reject(new Error(`kubectl port-forward exited: ${text}`)));
  });
  return { child, ports };
}

async function main(): Promise<void> {
  const ns = await testNamespace('bench-pf');
  try {
    const client = clusterClient(ns.name);
    await apply(
      nodePodManifest({
        name: 'pf-bench',
        namespace: ns.name,
        app: 'pf-bench',
        script: SERVER,
        readyPort: SINK,
      }),
    );
    const pod = await readyPod(ns.name, 'app=pf-bench');
    const access = await portForwardAccess(client);
    const results: Record<string, Record<'download' | 'upload', Figures>> = {};

    say(`kubectl port-forward (${size / MB} MB each way)`);
    const kubectl = await kubectlPortForward(ns.name, pod);
    try {
      results.kubectl = { download: { mbps: 0 }, upload: { mbps: 0 } };
      for (const direction of ['download', 'upload'] as const) {
        const port = direction === 'download' ? kubectl.ports[1]! : kubectl.ports[0]!;
        const socket = net.connect(port, '127.0.0.1');
        await new Promise((resolve) => socket.once('connect', resolve));
        const before = childCpuMs(kubectl.child);
        const ms = await transfer(socket, direction);
        results.kubectl[direction] = {
          mbps: Math.round((size * 8) / (ms * 1000)),
          cpuMsPerGB: Math.round(((childCpuMs(kubectl.child) - before) * 1024 * MB) / size),
        };
      }
    } finally {
      kubectl.child.kill();
    }

    for (const transport of ['spdy', 'spdy-websocket', 'websocket'] as PortForwardTransport[]) {
      say(`devbox port-forward over ${transport}`);
      results[transport] = { download: { mbps: 0 }, upload: { mbps: 0 } };
      for (const direction of ['download', 'upload'] as const) {
        const stream = await openPortForward({
          ...access,
          namespace: ns.name,
          pod,
          port: direction === 'download' ? SOURCE : SINK,
          transport,
        });
        const before = cpuMs();
        const ms = await transfer(stream, direction);
        results[transport]![direction] = {
          mbps: Math.round((size * 8) / (ms * 1000)),
          cpuMsPerGB: Math.round(((cpuMs() - before) * 1024 * MB) / size),
        };
      }
    }

    const rows = [
      ['', 'pod → host (Mbit/s)', 'CPU ms/GB', 'host → pod (Mbit/s)', 'CPU ms/GB'],
      ...Object.entries(results).map(([name, r]) => [
        name,
        String(r.download.mbps),
        String(r.download.cpuMsPerGB ?? '–'),
        String(r.upload.mbps),
        String(r.upload.cpuMsPerGB ?? '–'),
      ]),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
    process.stdout.write(
      `Port-forward transports, one ${size / MB} MB stream each way (CPU: the forwarding client process)\n${rows
        .map((row) =>
          row.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]! + 2))).join(''),
        )
        .join('\n')}\n`,
    );
    if (json) process.stdout.write(`${JSON.stringify(results)}\n`);
  } finally {
    await ns.remove();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    say(`bench failed: ${(err as Error).stack ?? err}`);
    process.exit(1);
  },
);
