/**
 * The programs the tunnel benchmark runs on every side: a server (in pods and
 * in the local container), a client (in a pod, on the host, in the local
 * container) and an RSS sampler (in the sidecar and agent containers). Each is
 * a self-contained function turned into a `node -e` script by {@link script},
 * so it runs on any Node 20 without a file to copy (the runtime image has no
 * shell and no tar). They may use only their arguments: no imports, no
 * closures.
 */

/** Node's `require`, as handed to the scripts. */
type Require = (id: string) => unknown;

/** `node -e` source that calls `fn(require, arg)`; `arg` travels as JSON in argv[1]. */
export function script<A>(fn: (req: Require, arg: A) => void): string {
  return `(${fn.toString()})(require, JSON.parse(process.argv[1]));`;
}

export interface ServerPorts {
  http: number;
  tcp: number;
}

/**
 * HTTP on `http`: `GET /bytes?n=N` streams N bytes, `POST /sink` reads the body and answers its
 * length, anything else answers `ok`
 * (keep-alive). TCP on `tcp`: writes one byte `x` on connect, then echoes.
 */
export function benchServer(req: Require, ports: ServerPorts): void {
  const http = req('node:http') as typeof import('node:http');
  const net = req('node:net') as typeof import('node:net');
  const crypto = req('node:crypto') as typeof import('node:crypto');
  const block = crypto.randomBytes(1 << 20);
  const server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://x');
    if (url.pathname === '/sink') {
      let got = 0;
      request.on('data', (d: Buffer) => {
        got += d.length;
      });
      request.on('end', () => {
        const body = String(got);
        response.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(body.length) });
        response.end(body);
      });
      return;
    }
    if (url.pathname !== '/bytes') {
      response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      response.end('ok');
      return;
    }
    let left = Number(url.searchParams.get('n') ?? 0);
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(left) });
    const pump = (): void => {
      while (left > 0) {
        const chunk = left >= block.length ? block : block.subarray(0, left);
        left -= chunk.length;
        if (!response.write(chunk)) {
          response.once('drain', pump);
          return;
        }
      }
      response.end();
    };
    response.on('close', () => {
      left = 0;
    });
    pump();
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 121_000;
  server.listen({ port: ports.http, backlog: 4096 });
  net
    .createServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.write('x');
      socket.pipe(socket);
    })
    .listen({ port: ports.tcp, backlog: 4096 });
}

/** One benchmark measurement, run by {@link benchClient}. */
export type ClientTask =
  | { kind: 'throughput'; bytes: number }
  | { kind: 'upload'; bytes: number }
  | { kind: 'latency'; count: number; warmup: number }
  | { kind: 'connect'; maxCount: number; maxMs: number; parallel: number }
  | { kind: 'concurrent'; connections: number; timeoutMs: number }
  | {
      kind: 'paused';
      streams: number;
      streamBytes: number;
      settleMs: number;
      holdMs: number;
      rounds: number;
    };

export interface ClientSpec {
  host: string;
  httpPort: number;
  tcpPort: number;
  task: ClientTask;
  /** The client exits with code 3 after this long, whatever it is doing. */
  deadlineMs: number;
}

export interface ThroughputResult {
  bytes: number;
  ms: number;
  mbps: number;
}
export interface LatencyResult {
  count: number;
  errors: number;
  p50: number;
  p99: number;
  mean: number;
}
export interface ConnectResult {
  count: number;
  errors: number;
  ms: number;
  perSecond: number;
}
export interface ConcurrentResult {
  connections: number;
  errors: number;
  /** Time until every connection had its greeting (or failed). */
  establishMs: number;
  firstError?: string;
}
export interface PausedResult {
  /** Medians of the rounds below. */
  baselineMbps: number;
  withPausedMbps: number;
  /** Aggregate Mbit/s of the other streams per round: alone, and beside the paused stream. */
  alone: number[];
  beside: number[];
  /** Bytes the paused stream handed over before its reader stopped (its first chunk). */
  pausedReceived: number;
  /** Epoch ms, last round: reader paused, measurement beside it started, hold ended. */
  pausedAt: number;
  measuredAt: number;
  heldUntil: number;
  /** The paused stream was still open (not reset) when released. */
  pausedStreamAlive: boolean;
}

/**
 * Runs one {@link ClientTask} against `host` and prints its result as one JSON line.
 * Every loop is bounded by a count and by `deadlineMs`.
 */
export function benchClient(req: Require, spec: ClientSpec): void {
  const http = req('node:http') as typeof import('node:http');
  const net = req('node:net') as typeof import('node:net');
  const started = Date.now();
  setTimeout(() => {
    process.stderr.write(`deadline of ${spec.deadlineMs} ms reached\n`);
    process.exit(3);
  }, spec.deadlineMs).unref();
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  const errorText = (err: unknown) => (err as { code?: string }).code ?? String(err);
  const done = (result: unknown) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  };
  const fail = (err: unknown) => {
    process.stderr.write(`${errorText(err)}\n`);
    process.exit(1);
  };

  /** Downloads `bytes`; resolves with the time it took. */
  const download = (bytes: number, agent: false | import('node:http').Agent = false) =>
    new Promise<number>((resolve, reject) => {
      const t0 = now();
      http
        .get({ host: spec.host, port: spec.httpPort, path: `/bytes?n=${bytes}`, agent }, (res) => {
          let got = 0;
          res.on('data', (d: Buffer) => {
            got += d.length;
          });
          res.on('end', () =>
            got === bytes ? resolve(now() - t0) : reject(new Error(`short body: ${got}`)),
          );
          res.on('error', reject);
        })
        .on('error', reject);
    });

  /** Uploads `bytes` in 1 MiB writes; resolves with the time until the server confirmed them all. */
  const upload = (bytes: number) =>
    new Promise<number>((resolve, reject) => {
      const t0 = now();
      const block = Buffer.alloc(1 << 20, 0x5a);
      const request = http.request(
        {
          host: spec.host,
          port: spec.httpPort,
          path: '/sink',
          method: 'POST',
          agent: false,
          headers: { 'content-length': String(bytes) },
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () =>
            Number(body) === bytes ? resolve(now() - t0) : reject(new Error(`server got ${body} bytes`)),
          );
          res.on('error', reject);
        },
      );
      request.on('error', reject);
      let left = bytes;
      const pump = (): void => {
        while (left > 0) {
          const chunk = left >= block.length ? block : block.subarray(0, left);
          left -= chunk.length;
          if (!request.write(chunk)) {
            request.once('drain', pump);
            return;
          }
        }
        request.end();
      };
      pump();
    });

  const throughput = async (bytes: number) => {
    const ms = await download(bytes);
    return { bytes, ms: Math.round(ms), mbps: Math.round((bytes * 8) / (ms * 1000)) };
  };

  const latency = async (count: number, warmup: number) => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const one = () =>
      new Promise<number>((resolve, reject) => {
        const t0 = now();
        http
          .get({ host: spec.host, port: spec.httpPort, path: '/', agent }, (res) => {
            res.resume();
            res.on('end', () => resolve(now() - t0));
            res.on('error', reject);
          })
          .on('error', reject);
      });
    const times: number[] = [];
    let errors = 0;
    for (let i = 0; i < count + warmup && Date.now() - started < spec.deadlineMs - 2000; i++) {
      try {
        const ms = await one();
        if (i >= warmup) times.push(ms);
      } catch {
        errors++;
      }
    }
    agent.destroy();
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? Number.NaN;
    const round = (ms: number) => Math.round(ms * 1000) / 1000;
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    return { count: times.length, errors, p50: round(at(0.5)), p99: round(at(0.99)), mean: round(mean) };
  };

  /** Opens a TCP connection and resolves once the server's greeting byte arrived. */
  const greet = (timeoutMs: number) =>
    new Promise<import('node:net').Socket>((resolve, reject) => {
      const socket = net.connect({ host: spec.host, port: spec.tcpPort });
      const timer = setTimeout(() => socket.destroy(new Error('greeting timeout')), timeoutMs);
      socket.once('data', () => {
        clearTimeout(timer);
        resolve(socket);
      });
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('close', () => {
        clearTimeout(timer);
        reject(new Error('closed before the greeting'));
      });
    });

  const connectRate = async (maxCount: number, maxMs: number, parallel: number) => {
    let count = 0;
    let errors = 0;
    let issued = 0;
    const t0 = now();
    const worker = async () => {
      while (issued < maxCount && now() - t0 < maxMs) {
        issued++;
        try {
          const socket = await greet(5000);
          socket.removeAllListeners('close');
          socket.on('error', () => undefined);
          socket.destroy();
          count++;
        } catch {
          errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    const ms = now() - t0;
    return { count, errors, ms: Math.round(ms), perSecond: Math.round((count * 1000) / ms) };
  };

  const concurrent = async (connections: number, timeoutMs: number) => {
    const t0 = now();
    let firstError: string | undefined;
    const settled = await Promise.allSettled(Array.from({ length: connections }, () => greet(timeoutMs)));
    const establishMs = Math.round(now() - t0);
    const sockets = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
    for (const s of settled) if (s.status === 'rejected') firstError ??= errorText(s.reason);
    // With every connection open at once, each one carries an exchange.
    const echoed = await Promise.allSettled(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('echo timeout')), timeoutMs);
            let got = '';
            socket.removeAllListeners('close');
            socket.on('data', (d: Buffer) => {
              got += d.toString();
              if (got === 'ping') {
                clearTimeout(timer);
                resolve();
              }
            });
            socket.on('close', () => reject(new Error('closed before the echo')));
            socket.write('ping');
          }),
      ),
    );
    for (const s of echoed) if (s.status === 'rejected') firstError ??= errorText(s.reason);
    for (const socket of sockets) socket.destroy();
    const errors = connections - echoed.filter((s) => s.status === 'fulfilled').length;
    return { connections, errors, establishMs, ...(firstError ? { firstError } : {}) };
  };

  /**
   * Rounds of: the other streams alone, then beside a freshly paused stream. Medians are compared,
   * since one round on a busy machine says little. The last round holds the paused stream for
   * `holdMs`, so memory growth under it shows.
   */
  const paused = async (
    streams: number,
    streamBytes: number,
    settleMs: number,
    holdMs: number,
    rounds: number,
  ) => {
    const parallel = async () => {
      const t0 = now();
      await Promise.all(Array.from({ length: streams }, () => download(streamBytes)));
      return Math.round((streams * streamBytes * 8) / ((now() - t0) * 1000));
    };
    /** A stream whose reader stops after the first chunk: its data backs up towards the server. */
    const openPaused = () =>
      new Promise<{ request: import('node:http').ClientRequest; alive: () => boolean; received: number }>(
        (resolve, reject) => {
          let alive = true;
          const request = http.get({
            host: spec.host,
            port: spec.httpPort,
            path: `/bytes?n=${64 * streamBytes}`,
            agent: false,
          });
          request.on('response', (res) => {
            res.once('data', (d: Buffer) => {
              res.pause();
              resolve({ request, alive: () => alive, received: d.length });
            });
            res.on('error', () => {
              alive = false;
            });
            res.on('close', () => {
              if (!res.complete) alive = false;
            });
          });
          request.on('error', reject);
        },
      );
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    await parallel(); // warm-up: connection windows and JIT, not counted
    const alone: number[] = [];
    const beside: number[] = [];
    let last = { pausedReceived: 0, pausedAt: 0, measuredAt: 0, heldUntil: 0, pausedStreamAlive: false };
    for (let round = 0; round < rounds; round++) {
      alone.push(await parallel());
      const stalled = await openPaused();
      const pausedAt = Date.now();
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      const measuredAt = Date.now();
      beside.push(await parallel());
      if (round === rounds - 1) {
        const holdLeft = measuredAt + holdMs - Date.now();
        if (holdLeft > 0) await new Promise((resolve) => setTimeout(resolve, holdLeft));
      }
      last = {
        pausedReceived: stalled.received,
        pausedAt,
        measuredAt,
        heldUntil: Date.now(),
        pausedStreamAlive: stalled.alive(),
      };
      stalled.request.destroy();
    }
    return { baselineMbps: median(alone), withPausedMbps: median(beside), alone, beside, ...last };
  };

  const task = spec.task;
  const run = (): Promise<unknown> => {
    switch (task.kind) {
      case 'throughput':
        return throughput(task.bytes);
      case 'upload':
        return upload(task.bytes).then((ms) => ({
          bytes: task.bytes,
          ms: Math.round(ms),
          mbps: Math.round((task.bytes * 8) / (ms * 1000)),
        }));
      case 'latency':
        return latency(task.count, task.warmup);
      case 'connect':
        return connectRate(task.maxCount, task.maxMs, task.parallel);
      case 'concurrent':
        return concurrent(task.connections, task.timeoutMs);
      case 'paused':
        return paused(task.streams, task.streamBytes, task.settleMs, task.holdMs, task.rounds);
    }
  };
  run().then(done, fail);
}

export interface SamplerSpec {
  /** A string in the command line of the process to watch (never the sampler's own)… */
  match?: string;
  /** …or its process id. */
  pid?: number;
  intervalMs: number;
  /** The sampler exits after this long. */
  durationMs: number;
}

/**
 * Prints `{"t":epochMs,"rss":bytes,"cpu":seconds}` for the matching process every `intervalMs`;
 * `cpu` is its user + system time so far (clock ticks of 1/100 s, Linux's USER_HZ).
 */
export function rssSampler(req: Require, spec: SamplerSpec): void {
  const fs = req('node:fs') as typeof import('node:fs');
  const find = () => {
    if (spec.pid) return String(spec.pid);
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
      try {
        const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
        if (spec.match && cmdline.includes(spec.match) && !cmdline.includes('rssSampler')) return entry;
      } catch {
        // gone meanwhile
      }
    }
    return undefined;
  };
  const pid = find();
  if (!pid) {
    process.stderr.write(`no process matches ${spec.match}\n`);
    process.exit(1);
  }
  const sample = () => {
    try {
      const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]);
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cpu = (Number(fields[11]) + Number(fields[12])) / 100;
      process.stdout.write(`${JSON.stringify({ t: Date.now(), rss: kb * 1024, cpu })}\n`);
    } catch {
      process.exit(2);
    }
  };
  sample();
  setInterval(sample, spec.intervalMs);
  setTimeout(() => process.exit(0), spec.durationMs);
}
