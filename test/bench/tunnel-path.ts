/**
 * `npm run bench:tunnel-path [-- --rtt-ms=50 --rate-mbps=1000 --transfer-mb=256 --rounds=2 --json]`:
 * the tunnel's own transport over a long path, without a cluster. The sidecar's tunnel client and
 * the agent run in this process and talk through toxiproxy (`wan.ts`: half the round trip and the
 * rate each way); the client's transport is a JavaScript stream, as the port-forward stream is in
 * the sidecar. Each round downloads and uploads `transfer-mb` through a tunnel stream and through a
 * plain TCP connection over the same kind of proxy (the baseline, measured just before). What it
 * shows is the protocol's own limit (windows, their ramp-up, batching) at that round trip; the
 * cluster, TLS and port-forward layers are left out (`bench:tunnel --profile wan` has them).
 */
import net, { type AddressInfo } from 'node:net';
import { Duplex } from 'node:stream';
import { startAgent } from '../../src/agent/agent.js';
import { AGENT_DEFAULTS } from '../../src/agent/config.js';
import { TunnelClient } from '../../src/tunnel/client.js';
import { startToxiproxy, wanSettings } from './wan.js';

const argv = process.argv.slice(2);
function flag(name: string): string | undefined {
  for (const [i, a] of argv.entries()) {
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
    if (a === `--${name}`) return argv[i + 1] ?? '';
  }
  return undefined;
}
const say = (text: string) => process.stderr.write(`${text}\n`);
const MB = 1024 * 1024;
const TOKEN = 'bench-token-0123456789';

/** A TCP server: a first byte `d` asks for `bytes` bytes; anything else is an upload of `bytes`, answered with `k`. */
async function bytesServer(bytes: number): Promise<{ port: number; close(): void }> {
  const block = Buffer.alloc(MB, 7);
  const server = net.createServer((socket) => {
    socket.on('error', () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      if (first[0] === 0x64) {
        let left = bytes;
        const pump = (): void => {
          while (left > 0) {
            const chunk = left >= block.length ? block : block.subarray(0, left);
            left -= chunk.length;
            if (!socket.write(chunk)) return void socket.once('drain', pump);
          }
          socket.end();
        };
        pump();
        return;
      }
      let got = first.length - 1;
      socket.on('data', (d: Buffer) => {
        got += d.length;
        if (got >= bytes) socket.end('k');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, close: () => server.close() };
}

/** A stream-level transport over a socket, as the sidecar's port-forward streams are. */
class JsTransport extends Duplex {
  constructor(private readonly socket: net.Socket) {
    super({ readableHighWaterMark: 256 * 1024, writableHighWaterMark: 256 * 1024 });
    socket.on('data', (d: Buffer) => {
      if (!this.push(d)) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
  }
  override _read(): void {
    this.socket.resume();
  }
  override _writev(chunks: { chunk: Buffer }[], callback: (error?: Error | null) => void): void {
    this.socket.cork();
    for (const c of chunks) this.socket.write(c.chunk);
    this.socket.uncork();
    if (this.socket.writableLength < MB) callback();
    else this.socket.once('drain', () => callback());
  }
  override _write(chunk: Buffer, _e: BufferEncoding, callback: (error?: Error | null) => void): void {
    this._writev([{ chunk }], callback);
  }
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }
}

const now = () => performance.now();

function download(stream: Duplex): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    stream.on('data', () => {});
    stream.once('end', () => resolve(now() - t0));
    stream.once('error', reject);
    stream.write('d');
  });
}

function upload(stream: Duplex, bytes: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const block = Buffer.alloc(MB, 5);
    stream.once('data', () => resolve(now() - t0));
    stream.once('error', reject);
    stream.write('u');
    let left = bytes;
    const pump = (): void => {
      while (left > 0) {
        const chunk = left >= block.length ? block : block.subarray(0, left);
        left -= chunk.length;
        if (!stream.write(chunk)) return void stream.once('drain', pump);
      }
    };
    pump();
  });
}

function dial(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

async function main(): Promise<void> {
  const settings = wanSettings(flag);
  const bytes = Number(flag('transfer-mb') ?? 256) * MB;
  const rounds = Number(flag('rounds') ?? 2);
  const server = await bytesServer(bytes);
  const agent = await startAgent({
    ...AGENT_DEFAULTS,
    token: TOKEN,
    tunnelPort: 0,
    intercepts: [],
    interceptHost: '127.0.0.1',
    shutdownGraceMs: 200,
    // The bytes server listens on loopback, beside the agent.
    dialLocalTargets: true,
  });
  const toxiproxy = await startToxiproxy(say);
  try {
    const port = async (name: string, upstream: number) =>
      Number((await toxiproxy.link(name, '127.0.0.1:0', `127.0.0.1:${upstream}`, settings)).split(':').pop());
    const plainPort = await port('plain', server.port);
    const tunnelPort = await port('tunnel', agent.tunnelPort);
    const client = await TunnelClient.connect(new JsTransport(await dial(tunnelPort)), { token: TOKEN });
    const mbps = (ms: number) => Math.round((bytes * 8) / (ms * 1000));
    const results = [];
    for (let round = 0; round < rounds; round++) {
      const plainDown = mbps(await download(await dial(plainPort)));
      const tunnelDown = mbps(await download(await client.openTcp('127.0.0.1', server.port)));
      const plainUp = mbps(await upload(await dial(plainPort), bytes));
      const tunnelUp = mbps(await upload(await client.openTcp('127.0.0.1', server.port), bytes));
      const result = {
        plainDownMbps: plainDown,
        tunnelDownMbps: tunnelDown,
        downRatio: Math.round((tunnelDown / plainDown) * 100) / 100,
        plainUpMbps: plainUp,
        tunnelUpMbps: tunnelUp,
        upRatio: Math.round((tunnelUp / plainUp) * 100) / 100,
      };
      results.push(result);
      say(
        `round ${round + 1}: download ${tunnelDown} Mbit/s tunnel / ${plainDown} plain TCP (${Math.round(result.downRatio * 100)}%), ` +
          `upload ${tunnelUp} / ${plainUp} (${Math.round(result.upRatio * 100)}%)`,
      );
    }
    client.destroy();
    if (argv.includes('--json')) {
      process.stdout.write(`${JSON.stringify({ ...settings, transferBytes: bytes, rounds: results })}\n`);
    }
  } finally {
    await toxiproxy.stop();
    await agent.close();
    server.close();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    say(`bench failed: ${(err as Error).message}`);
    process.exit(1);
  },
);
