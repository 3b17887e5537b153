/**
 * Loopback stand-ins for the sidecar's collaborators: a tiny Kubernetes API
 * (list + watch over HTTP), echo servers, and in-process tunnel links that dial
 * loopback directly instead of going through an agent.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { AddressAdder } from '../../../src/sidecar/loopback.js';
import type {
  InboundStream,
  TunnelDialer,
  TunnelLink,
  UdpFlowLink,
} from '../../../src/sidecar/tunnel-link.js';
import type { Share } from '../../../src/tunnel/share.js';

type Obj = { metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> } } & Record<
  string,
  unknown
>;

interface Watcher {
  path: string;
  selector: string | undefined;
  res: http.ServerResponse;
}

/** A fake API server: collections by path, a global resourceVersion, list and watch. */
export class FakeKube {
  readonly requests: string[] = [];
  private readonly collections = new Map<string, Map<string, Obj>>();
  private readonly watchers = new Set<Watcher>();
  private rv = 100;
  /** Statuses to answer the next watch requests with instead of streaming. */
  readonly watchFailures: number[] = [];
  /** Statuses to answer the next list requests with. */
  readonly listFailures: number[] = [];
  /** Page size the fake imposes on lists (to exercise `continue`). */
  pageSize = 1000;
  private server!: http.Server;
  port = 0;

  /**
   * Where pod port-forwards go: given pod and port, a local TCP port to bridge the
   * `v4.channel.k8s.io` data channel to (undefined → 404).
   */
  portForwardTo?: (pod: string, port: number) => number | undefined;
  readonly portForwards: string[] = [];
  /** Namespaces whose objects answer 403, as without RBAC there. */
  readonly forbiddenNamespaces = new Set<string>();
  /** Lists and watches across namespaces (`/api/v1/services`) answer 403, as with namespaced RBAC only. */
  forbidAcrossNamespaces = false;

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    const wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has('v4.channel.k8s.io') ? 'v4.channel.k8s.io' : false),
    });
    this.server.on('upgrade', (req, socket, head) => {
      // v4 WebSocket only, like a proxy that refuses SPDY in front of an API server older than 1.30:
      // the client falls back on the 400s.
      const v4 = String(req.headers['sec-websocket-protocol'] ?? '').includes('v4.channel.k8s.io');
      if (req.headers.upgrade?.toLowerCase() !== 'websocket' || !v4) {
        socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      const url = new URL(req.url ?? '/', 'http://x');
      const pod = /\/pods\/([^/]+)\/portforward$/.exec(url.pathname)?.[1] ?? '';
      const port = Number(url.searchParams.get('ports'));
      const target = this.portForwardTo?.(pod, port);
      this.portForwards.push(`${pod}:${port}`);
      if (target === undefined || req.headers.authorization !== 'Bearer test-token') {
        socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => bridgePortForward(ws, port, target));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** Whether a watch of `path` is open (the fake replays nothing to a watch opened later). */
  watching(path: string): boolean {
    return [...this.watchers].some((w) => w.path === path);
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private collection(path: string): Map<string, Obj> {
    let c = this.collections.get(path);
    if (!c) {
      c = new Map();
      this.collections.set(path, c);
    }
    return c;
  }

  /** Adds or replaces an object and tells matching watchers. */
  put(path: string, obj: Obj): void {
    const c = this.collection(path);
    const type = c.has(obj.metadata.name) ? 'MODIFIED' : 'ADDED';
    const stored = structuredClone(obj) as Obj & { metadata: { namespace?: string } };
    stored.metadata.namespace ??= namespaceOf(path);
    stored.metadata.resourceVersion = String(++this.rv);
    c.set(obj.metadata.name, stored);
    this.emit(path, { type, object: stored });
  }

  delete(path: string, name: string): void {
    const c = this.collection(path);
    const obj = c.get(name);
    if (!obj) return;
    c.delete(name);
    const gone = structuredClone(obj);
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit(path, { type: 'DELETED', object: gone });
  }

  /** Ends every open watch normally (as the API server does after timeoutSeconds). */
  endWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Sends an ERROR event with code 410 to every open watch, then ends it. */
  expireWatches(): void {
    for (const w of this.watchers) {
      w.res.write(
        `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, message: 'too old resource version' } })}\n`,
      );
      w.res.end();
    }
    this.watchers.clear();
  }

  bookmark(path: string): void {
    this.emit(path, { type: 'BOOKMARK', object: { metadata: { resourceVersion: String(++this.rv) } } });
  }

  private emit(path: string, event: { type: string; object: { metadata: Partial<Obj['metadata']> } }): void {
    for (const w of this.watchers) {
      if (w.path !== path && w.path !== acrossNamespaces(path)) continue;
      if (event.type !== 'BOOKMARK' && !matches(w.selector, event.object.metadata.labels)) continue;
      w.res.write(`${JSON.stringify(event)}\n`);
    }
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.requests.push(`${url.pathname}?${url.searchParams.toString()}`);
    const selector = url.searchParams.get('labelSelector') ?? undefined;
    const status = (code: number, message: string) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ kind: 'Status', code, message }));
    };
    if (req.headers.authorization !== 'Bearer test-token') {
      status(401, 'Unauthorized');
      return;
    }
    const namespace = /\/namespaces\/([^/]+)\//.exec(url.pathname)?.[1];
    if (namespace && this.forbiddenNamespaces.has(namespace)) {
      status(403, `forbidden: cannot list resource in the namespace "${namespace}"`);
      return;
    }
    if (!namespace && this.forbidAcrossNamespaces && /\/(services|endpointslices)$/.test(url.pathname)) {
      status(403, 'forbidden: cannot list resource at the cluster scope');
      return;
    }
    if (url.searchParams.get('watch') === '1') {
      const failure = this.watchFailures.shift();
      if (failure) {
        status(failure, failure === 410 ? 'too old resource version' : 'boom');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.flushHeaders();
      const w: Watcher = { path: url.pathname, selector, res };
      this.watchers.add(w);
      res.on('close', () => this.watchers.delete(w));
      return;
    }
    const failure = this.listFailures.shift();
    if (failure) {
      status(failure, 'list failed');
      return;
    }
    const all = [...this.collections]
      .filter(([path]) => path === url.pathname || acrossNamespaces(path) === url.pathname)
      .flatMap(([, c]) => [...c.values()])
      .filter((o) => matches(selector, o.metadata.labels));
    const start = Number(url.searchParams.get('continue') ?? '0');
    const limit = Math.min(Number(url.searchParams.get('limit') ?? '1000'), this.pageSize);
    const items = all.slice(start, start + limit);
    const more = start + limit < all.length;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'List',
        metadata: { resourceVersion: String(this.rv), ...(more ? { continue: String(start + limit) } : {}) },
        items,
      }),
    );
  }
}

/** The server side of one port-forward: channel 0 carries data, channel 1 errors; each starts with the port. */
function bridgePortForward(ws: import('ws').WebSocket, port: number, target: number): void {
  const tcp = net.connect(target, '127.0.0.1');
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16LE(port);
  ws.send(Buffer.concat([Buffer.from([0]), prefix]));
  ws.send(Buffer.concat([Buffer.from([1]), prefix]));
  ws.on('message', (m: Buffer) => tcp.write(m.subarray(1)));
  tcp.on('data', (d) => ws.send(Buffer.concat([Buffer.from([0]), d])));
  tcp.on('error', () => ws.terminate());
  tcp.on('close', () => ws.close());
  ws.on('close', () => tcp.destroy());
  ws.on('error', () => tcp.destroy());
}

/** `/api/v1/namespaces/shop/services` → `shop`. */
function namespaceOf(path: string): string | undefined {
  return /\/namespaces\/([^/]+)\//.exec(path)?.[1];
}

/** `/api/v1/namespaces/shop/services` → `/api/v1/services`, the same kind across namespaces. */
function acrossNamespaces(path: string): string {
  return path.replace(/\/namespaces\/[^/]+\//, '/');
}

function matches(selector: string | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return labels?.[k!] === v;
  });
}

/** A TCP echo server on 127.0.0.1:0. */
export async function tcpEcho(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A UDP echo server on 127.0.0.1:0 that prefixes replies with `echo:`. */
export async function udpEcho(): Promise<{ port: number; close: () => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) =>
    socket.send(Buffer.concat([Buffer.from('echo:'), msg]), rinfo.port, rinfo.address),
  );
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}

/**
 * An in-process tunnel link: TCP and UDP go straight to 127.0.0.1 on the port
 * `route` picks for the requested target (undefined → refused).
 */
export class LoopbackLink implements TunnelLink {
  readonly opened: string[] = [];
  private open = 0;
  private resolveClosed!: () => void;
  readonly closed = new Promise<void>((resolve) => {
    this.resolveClosed = resolve;
  });
  isClosed = false;

  constructor(
    private readonly route: (host: string, port: number) => number | undefined,
    private readonly dns: (query: Buffer) => Promise<Buffer> = async () => {
      throw new Error('no dns');
    },
  ) {}

  async openTcp(host: string, port: number): Promise<Duplex> {
    this.opened.push(`tcp ${host}:${port}`);
    const target = this.route(host, port);
    if (target === undefined)
      throw Object.assign(new Error(`${host}:${port}: connection refused`), { code: 'ECONNREFUSED' });
    const socket = net.connect({ host: '127.0.0.1', port: target, allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    this.open++;
    socket.once('close', () => this.open--);
    return socket;
  }

  async openUdp(host: string, port: number): Promise<UdpFlowLink> {
    this.opened.push(`udp ${host}:${port}`);
    const target = this.route(host, port);
    if (target === undefined) throw new Error('unreachable');
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => socket.connect(target, '127.0.0.1', resolve));
    let closeListener: (() => void) | undefined;
    let closed = false;
    return {
      send: (d) => socket.send(d),
      onDatagram: (l) => socket.on('message', (m) => l(m)),
      onClose: (l) => {
        closeListener = l;
      },
      close: () => {
        if (closed) return;
        closed = true;
        socket.close();
        closeListener?.();
      },
    };
  }

  dnsQuery(query: Buffer): Promise<Buffer> {
    return this.dns(query);
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.resolveClosed();
  }

  stats() {
    return { streamsOpen: this.open };
  }

  /** What the sidecar asked this link's agent to apply: `+key` shared, `-key` revoked. */
  readonly shareLog: string[] = [];

  share(share: Share): boolean {
    this.shareLog.push(`+${share.key}`);
    return true;
  }

  revokeShare(key: string): void {
    this.shareLog.push(`-${key}`);
  }
}

/** A dialer handing out LoopbackLinks, recording every dial; `fail` makes dials reject. */
export class FakeDialer {
  readonly dials: string[] = [];
  readonly links: LoopbackLink[] = [];
  readonly inbound: ((i: InboundStream) => void)[] = [];
  fail = false;

  constructor(
    private readonly route: (host: string, port: number) => number | undefined = () => undefined,
    private readonly dns?: (query: Buffer) => Promise<Buffer>,
  ) {}

  readonly dial: TunnelDialer = async (target, onInbound) => {
    this.dials.push(target.pod);
    if (this.fail) throw new Error(`dial ${target.pod} failed`);
    const link = new LoopbackLink(this.route, this.dns);
    this.links.push(link);
    this.inbound.push(onInbound);
    return link;
  };
}

/** Records adds/removes; `deny` makes it behave like a container without NET_ADMIN. */
export class RecordingAdder implements AddressAdder {
  readonly added = new Set<string>();
  readonly calls: string[] = [];
  constructor(private readonly deny?: () => Error) {}
  async add(ip: string): Promise<void> {
    this.calls.push(`add ${ip}`);
    if (this.deny) throw this.deny();
    this.added.add(ip);
  }
  async remove(ip: string): Promise<void> {
    this.calls.push(`remove ${ip}`);
    this.added.delete(ip);
  }
}

/** Polls `check` until it is true or `timeoutMs` passes. */
export async function eventually(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 3000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Sends `payload` over TCP to host:port, half-closes, and collects the reply (or the error code). */
export function tcpRoundTrip(
  host: string,
  port: number,
  payload: string,
): Promise<{ reply?: string; error?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, allowHalfOpen: true });
    const chunks: Buffer[] = [];
    socket.on('connect', () => socket.end(payload));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve({ reply: Buffer.concat(chunks).toString() }));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** One UDP request/response to host:port, with a timeout. */
export function udpRoundTrip(
  host: string,
  port: number,
  payload: string,
  timeoutMs = 2000,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.on('message', (msg) => {
      clearTimeout(timer);
      socket.close();
      resolve(msg.toString());
    });
    socket.send(payload, port, host);
  });
}
