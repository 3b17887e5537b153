import { isIP } from 'node:net';

/** One upstream nameserver. */
export interface Nameserver {
  host: string;
  port: number;
}

/** The parts of resolv.conf the DNS relay uses. */
export interface ResolvConf {
  nameservers: Nameserver[];
  /** Per-try timeout (options timeout:N, default 5 s, capped at 30 s). */
  timeoutMs: number;
  /** Rounds over all nameservers (options attempts:N, default 2, capped at 5). */
  attempts: number;
  search: string[];
  ndots: number;
}

/**
 * Parses resolv.conf text. Besides the standard forms, a nameserver may carry a port for tests:
 * `127.0.0.1:5353` or `[::1]:5353`.
 */
export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], timeoutMs: 5_000, attempts: 2, search: [], ndots: 1 };
  for (const rawLine of text.split('\n')) {
    const line = rawLine.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const [keyword, ...args] = line.split(/\s+/);
    if (keyword === 'nameserver' && args[0]) {
      const ns = parseNameserver(args[0]);
      if (ns && conf.nameservers.length < 8) conf.nameservers.push(ns);
    } else if (keyword === 'search' || keyword === 'domain') {
      conf.search = args.slice(0, 32);
    } else if (keyword === 'options') {
      for (const opt of args) {
        const [name, value] = opt.split(':');
        const n = Number(value);
        if (!Number.isInteger(n) || n < 0) continue;
        if (name === 'timeout') conf.timeoutMs = Math.min(Math.max(n, 1), 30) * 1000;
        else if (name === 'attempts') conf.attempts = Math.min(Math.max(n, 1), 5);
        else if (name === 'ndots') conf.ndots = Math.min(n, 15);
      }
    }
  }
  return conf;
}

function parseNameserver(text: string): Nameserver | undefined {
  const bracketed = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text);
  if (bracketed) {
    const port = bracketed[2] ? Number(bracketed[2]) : 53;
    return isIP(bracketed[1]!) === 6 && port >= 1 && port <= 65535
      ? { host: bracketed[1]!, port }
      : undefined;
  }
  if (isIP(text)) return { host: text, port: 53 };
  const hostPort = /^([\d.]+):(\d{1,5})$/.exec(text);
  if (hostPort && isIP(hostPort[1]!) === 4) {
    const port = Number(hostPort[2]);
    if (port >= 1 && port <= 65535) return { host: hostPort[1]!, port };
  }
  return undefined;
}
