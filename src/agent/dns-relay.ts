import dgram from 'node:dgram';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import { DevboxError } from '../util/errors.js';
import { type Nameserver, parseResolvConf, type ResolvConf } from './resolv-conf.js';

const DNS_HEADER_BYTES = 12;
const TC_BIT = 0x02;
const RELOAD_AFTER_MS = 30_000;

/**
 * Relays raw DNS queries to the pod's nameservers, exactly as the pod's resolver would reach them:
 * UDP first, TCP when the answer comes back truncated; servers and timeouts from resolv.conf.
 */
export class DnsRelay {
  private conf: ResolvConf | undefined;
  private loadedAt = 0;

  constructor(private readonly resolvConfPath: string) {}

  /** The current resolver configuration (re-read every 30 s). */
  async config(): Promise<ResolvConf> {
    if (!this.conf || Date.now() - this.loadedAt > RELOAD_AFTER_MS) {
      try {
        this.conf = parseResolvConf(await readFile(this.resolvConfPath, 'utf8'));
      } catch (err) {
        if (!this.conf)
          throw new DevboxError('NOT_FOUND', `cannot read ${this.resolvConfPath}`, { cause: err });
      }
      this.loadedAt = Date.now();
    }
    return this.conf!;
  }

  /** Answers one wire-format query; throws when it is malformed or no nameserver answers. */
  async query(query: Buffer): Promise<Buffer> {
    if (query.length < DNS_HEADER_BYTES)
      throw new DevboxError('BAD_INPUT', 'DNS query shorter than its header');
    const conf = await this.config();
    if (conf.nameservers.length === 0) {
      throw new DevboxError('NOT_FOUND', `no nameserver in ${this.resolvConfPath}`);
    }
    let lastError: unknown;
    for (let round = 0; round < conf.attempts; round++) {
      for (const server of conf.nameservers) {
        try {
          const answer = await udpExchange(server, query, conf.timeoutMs);
          if ((answer[2]! & TC_BIT) === 0) return answer;
          return await tcpExchange(server, query, conf.timeoutMs);
        } catch (err) {
          lastError = err;
        }
      }
    }
    throw new DevboxError('TIMEOUT', `no answer from ${conf.nameservers.map(formatServer).join(', ')}`, {
      cause: lastError,
    });
  }
}

function formatServer(s: Nameserver): string {
  return s.host.includes(':') ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

function sameId(query: Buffer, answer: Buffer): boolean {
  return answer.length >= DNS_HEADER_BYTES && answer[0] === query[0] && answer[1] === query[1];
}

function udpExchange(server: Nameserver, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    const finish = (err: Error | undefined, answer?: Buffer) => {
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new Error(`${formatServer(server)}: timeout`)), timeoutMs);
    socket.on('error', (err) => finish(err));
    // Answers from anywhere else, or for another id, are ignored as a resolver would.
    socket.on('message', (msg) => {
      if (sameId(query, msg)) finish(undefined, msg);
    });
    socket.connect(server.port, server.host, () => {
      socket.send(query, (err) => {
        if (err) finish(err);
      });
    });
  });
}

function tcpExchange(server: Nameserver, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: server.host, port: server.port });
    let buffered = Buffer.alloc(0);
    const finish = (err: Error | undefined, answer?: Buffer) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new Error(`${formatServer(server)}: tcp timeout`)), timeoutMs);
    socket.on('error', (err) => finish(err));
    socket.on('connect', () => {
      const prefix = Buffer.allocUnsafe(2);
      prefix.writeUInt16BE(query.length, 0);
      socket.write(Buffer.concat([prefix, query]));
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 2) return;
      const size = buffered.readUInt16BE(0);
      if (buffered.length < 2 + size) return;
      const answer = buffered.subarray(2, 2 + size);
      if (sameId(query, answer)) finish(undefined, Buffer.from(answer));
      else finish(new Error(`${formatServer(server)}: answer id mismatch`));
    });
    socket.on('end', () => finish(new Error(`${formatServer(server)}: closed before answering`)));
  });
}
