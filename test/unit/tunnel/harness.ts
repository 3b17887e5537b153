// Loopback fixtures shared by the tunnel and agent unit tests.
import dgram from 'node:dgram';
import net, { type AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import type { Readable } from 'node:stream';
import { type RunningAgent, startAgent } from '../../../src/agent/agent.js';
import { AGENT_DEFAULTS, type AgentConfig } from '../../../src/agent/config.js';
import { TunnelClient, type TunnelClientOptions } from '../../../src/tunnel/client.js';
import type { Logger } from '../../../src/util/log.js';

export const TEST_TOKEN = 'test-token-0123456789';

/**
 * An IPv4 address of this machine that is not loopback (agents in production refuse to dial
 * loopback). Every machine that runs the tests has one (Docker's bridge, at least).
 */
export function outsideAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return a.address;
  }
  throw new Error('this machine has no IPv4 address but loopback');
}

/** Tracks everything a test opens so that `close()` tears it all down. */
export class Fixtures {
  private readonly closers: (() => Promise<void> | void)[] = [];

  add(closer: () => Promise<void> | void): void {
    this.closers.push(closer);
  }

  async close(): Promise<void> {
    for (const closer of this.closers.splice(0).reverse()) {
      try {
        await closer();
      } catch {
        // best effort
      }
    }
  }

  /** An agent on loopback with a random tunnel port. */
  async agent(overrides: Partial<AgentConfig> = {}, log?: Logger): Promise<RunningAgent> {
    const agent = await startAgent(
      {
        ...AGENT_DEFAULTS,
        token: TEST_TOKEN,
        tunnelPort: 0,
        intercepts: [],
        interceptHost: '127.0.0.1',
        shutdownGraceMs: 200,
        // The test's servers listen on loopback; the files tests use temporary directories.
        dialLocalTargets: true,
        filesRoot: tmpdir(),
        ...overrides,
      },
      log,
    );
    this.add(() => agent.close());
    return agent;
  }

  /** A raw TCP connection to the agent's tunnel port. */
  async socketTo(port: number): Promise<net.Socket> {
    const socket = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    this.add(() => {
      socket.destroy();
    });
    return socket;
  }

  /** A tunnel client connected over a loopback TCP socket. */
  async client(agent: RunningAgent, opts: Partial<TunnelClientOptions> = {}): Promise<TunnelClient> {
    const socket = await this.socketTo(agent.tunnelPort);
    const client = await TunnelClient.connect(socket, { token: TEST_TOKEN, ...opts });
    this.add(() => client.destroy());
    return client;
  }

  /** A TCP server on 127.0.0.1:0; half-open sockets allowed. */
  async tcpServer(onConnection: (socket: net.Socket) => void): Promise<number> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      onConnection(socket);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.add(
      () =>
        new Promise<void>((resolve) => {
          for (const s of sockets) s.destroy();
          server.close(() => resolve());
        }),
    );
    return (server.address() as AddressInfo).port;
  }

  /** A TCP echo server that honours backpressure and half-close. */
  echoServer(): Promise<number> {
    return this.tcpServer((socket) => socket.pipe(socket));
  }

  /** A server that answers every connection with `text` and closes. */
  bannerServer(text: string): Promise<number> {
    return this.tcpServer((socket) => socket.end(text));
  }

  /** A UDP echo server on 127.0.0.1:0. */
  async udpEchoServer(): Promise<number> {
    const socket = dgram.createSocket('udp4');
    socket.on('message', (msg, rinfo) => socket.send(msg, rinfo.port, rinfo.address));
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    this.add(() => new Promise<void>((resolve) => socket.close(() => resolve())));
    return socket.address().port;
  }

  /** An unused loopback TCP port (bound then released). */
  async freePort(): Promise<number> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }
}

/** Reads a stream to its end. */
export function readAll(stream: Readable, max = 64 * 1024 * 1024): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) reject(new Error('too much data'));
      chunks.push(chunk);
    });
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', reject);
  });
}

/** Connects to 127.0.0.1:port, optionally writes, and reads until the server closes. */
export async function exchange(port: number, send?: string, timeoutMs = 5_000): Promise<string> {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.setTimeout(timeoutMs, () =>
    socket.destroy(new Error(`no answer from port ${port} in ${timeoutMs} ms`)),
  );
  if (send !== undefined) socket.end(send);
  return (await readAll(socket)).toString();
}

/** Rejects when `promise` takes longer than `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    }),
  ]);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds or `ms` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not true within ${ms} ms`);
    await sleep(20);
  }
}

/** Resolves on 'close', whatever errors came first (events.once would reject on 'error'). */
export function closeOf(emitter: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => emitter.once('close', () => resolve()));
}

/**
 * A stand-in for the API server's pod port-forward: a WebSocket server on 127.0.0.1:0 speaking
 * v4.channel.k8s.io that joins each WebSocket to a TCP connection to `targetPort`, with backpressure.
 * Returns its base URL and a function that kills every bridged connection abruptly.
 */
export async function portForwardBridge(
  fx: Fixtures,
  targetPort: number,
  tls?: { cert: string; key: string },
): Promise<{ server: string; killAll(): void }> {
  const { WebSocketServer } = await import('ws');
  const http = await import('node:http');
  const https = await import('node:https');
  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (p) => (p.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false),
  });
  const server = tls ? https.createServer(tls) : http.createServer();
  const tcps = new Set<net.Socket>();
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {});
      const prefix = Buffer.from([targetPort & 0xff, targetPort >> 8]);
      ws.send(Buffer.concat([Buffer.from([0]), prefix]));
      ws.send(Buffer.concat([Buffer.from([1]), prefix]));
      const tcp = net.connect(targetPort, '127.0.0.1');
      tcps.add(tcp);
      tcp.on('error', () => {});
      tcp.on('data', (d: Buffer) => {
        ws.send(Buffer.concat([Buffer.from([0]), d]), () => {
          if (tcp.isPaused() && ws.bufferedAmount < 256 * 1024) tcp.resume();
        });
        if (ws.bufferedAmount > 1024 * 1024) tcp.pause();
      });
      ws.on('message', (m: Buffer) => {
        if (!tcp.write(m.subarray(1))) ws.pause();
      });
      tcp.on('drain', () => ws.resume());
      tcp.on('close', () => {
        tcps.delete(tcp);
        ws.close(1000);
      });
      ws.on('close', () => tcp.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const killAll = () => {
    for (const ws of wss.clients) ws.terminate();
    for (const tcp of tcps) tcp.destroy();
  };
  fx.add(
    () =>
      new Promise<void>((resolve) => {
        killAll();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  const { port } = server.address() as AddressInfo;
  return { server: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`, killAll };
}
