/**
 * Redirection of cluster addresses by NAT in the sidecar's own network namespace (shared with
 * the service container, and nobody else's: the host's tables are never touched).
 *
 * Every cluster destination (protocol, IPv4 address, port) gets an alias of its own in
 * 127.64.0.0/10; a DNAT rule in the `output` hook rewrites a local connection to
 * `alias:listenPort`, where one TCP listener bound to `0.0.0.0:listenPort` accepts them all and
 * reads the destination back from the accepted socket's local address (Linux delivers the
 * rewritten address there; no SO_ORIGINAL_DST needed). UDP destinations get one socket each,
 * bound to `alias:listenPort`, because a wildcard UDP socket cannot tell its datagrams' local
 * address in Node. Replies are un-NATed by conntrack, so the app sees the real cluster address.
 * The app's own ports stay free: nothing is bound on them.
 *
 * nftables (one table with two verdict-free maps, loaded atomically by `nft -f`, changed by
 * element add/delete) is tried first; `iptables-restore` (one rule per destination in a chain of
 * our own, reloaded whole) where nft is missing. Both disappear with the container's namespace.
 */
import { execFile } from 'node:child_process';
import { DevboxError } from '../util/errors.js';
import type { PortProtocol } from './resources.js';

/** One redirected destination. */
export interface NatTarget {
  protocol: PortProtocol;
  ip: string;
  port: number;
  /** 127.64.0.0/10 address the destination is rewritten to. */
  alias: string;
}

export type NatBackendName = 'nftables' | 'iptables';

/** The rules of one sidecar; every call replaces or edits them atomically. */
export interface NatTable {
  readonly backend: NatBackendName;
  /** Applies a change: `added` (new or changed) and `removed` targets. */
  update(added: readonly NatTarget[], removed: readonly NatTarget[]): Promise<void>;
  /** Removes every rule this table added. */
  clear(): Promise<void>;
}

/** Opens the table (loading it empty); rejects with NatUnavailableError when neither backend works. */
export type NatOpener = (listenPort: number) => Promise<NatTable>;

/** Neither nftables nor iptables could be programmed; the message says why for each. */
export class NatUnavailableError extends DevboxError {
  constructor(message: string, cause?: unknown) {
    super('FORBIDDEN', message, {
      cause,
      hint: 'give the sidecar NET_ADMIN and use a sidecar image with nft (nftables) or iptables-restore',
    });
    this.name = 'NatUnavailableError';
  }
}

export const NFT_TABLE = 'devbox';
export const IPTABLES_CHAIN = 'DEVBOX-OUTPUT';

const mapOf = (protocol: PortProtocol) => (protocol === 'TCP' ? 'tcp_targets' : 'udp_targets');
const element = (t: NatTarget) => `${t.ip} . ${t.port}`;

/** The whole table, replacing any earlier one in the same transaction. */
export function nftLoadScript(listenPort: number, targets: readonly NatTarget[] = []): string {
  const elements = (protocol: PortProtocol) => {
    const list = targets.filter((t) => t.protocol === protocol).map((t) => `${element(t)} : ${t.alias}`);
    return list.length ? ` elements = { ${list.join(', ')} }` : '';
  };
  return [
    `add table ip ${NFT_TABLE}`,
    `delete table ip ${NFT_TABLE}`,
    `table ip ${NFT_TABLE} {`,
    `  map tcp_targets { type ipv4_addr . inet_service : ipv4_addr;${elements('TCP')} }`,
    `  map udp_targets { type ipv4_addr . inet_service : ipv4_addr;${elements('UDP')} }`,
    '  chain output {',
    '    type nat hook output priority -100; policy accept;',
    `    meta l4proto tcp dnat to ip daddr . tcp dport map @tcp_targets : ${listenPort}`,
    `    meta l4proto udp dnat to ip daddr . udp dport map @udp_targets : ${listenPort}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Element changes, one transaction: removals first so a changed alias can be added back. */
export function nftUpdateScript(added: readonly NatTarget[], removed: readonly NatTarget[]): string {
  const lines: string[] = [];
  for (const protocol of ['TCP', 'UDP'] as const) {
    const gone = removed.filter((t) => t.protocol === protocol);
    if (gone.length)
      lines.push(`delete element ip ${NFT_TABLE} ${mapOf(protocol)} { ${gone.map(element).join(', ')} }`);
  }
  for (const protocol of ['TCP', 'UDP'] as const) {
    const fresh = added.filter((t) => t.protocol === protocol);
    if (fresh.length)
      lines.push(
        `add element ip ${NFT_TABLE} ${mapOf(protocol)} { ${fresh.map((t) => `${element(t)} : ${t.alias}`).join(', ')} }`,
      );
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/**
 * The whole chain for `iptables-restore --noflush`: declaring the chain flushes it, so each
 * load replaces every rule; `jump` adds the OUTPUT rule that sends traffic to it (first load only).
 */
export function iptablesScript(listenPort: number, targets: Iterable<NatTarget>, jump: boolean): string {
  const lines = ['*nat', `:${IPTABLES_CHAIN} - [0:0]`];
  for (const t of targets) {
    const proto = t.protocol === 'TCP' ? 'tcp' : 'udp';
    lines.push(
      `-A ${IPTABLES_CHAIN} -d ${t.ip}/32 -p ${proto} -m ${proto} --dport ${t.port} -j DNAT --to-destination ${t.alias}:${listenPort}`,
    );
  }
  if (jump) lines.push(`-A OUTPUT -j ${IPTABLES_CHAIN}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** Runs a command with `input` on stdin; rejects with its stderr. */
export type ScriptRunner = (file: string, args: string[], input: string) => Promise<void>;

export const runScript: ScriptRunner = (file, args, input) =>
  new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: 30_000, maxBuffer: 1 << 20 }, (err, _out, stderr) => {
      if (!err) return resolve();
      reject(Object.assign(err, { stderr: String(stderr).trim() }));
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });

function reasonOf(file: string, err: unknown): string {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `no ${file} command in the sidecar image`;
  const stderr = (err as { stderr?: string }).stderr;
  return `${file}: ${(stderr || (err as Error).message || String(err)).split('\n')[0]}`;
}

/** A table programmed with `nft -f -`. */
export async function openNftTable(listenPort: number, run: ScriptRunner = runScript): Promise<NatTable> {
  await run('nft', ['-f', '-'], nftLoadScript(listenPort));
  return {
    backend: 'nftables',
    async update(added, removed) {
      const script = nftUpdateScript(added, removed);
      if (script) await run('nft', ['-f', '-'], script);
    },
    async clear() {
      await run('nft', ['-f', '-'], `delete table ip ${NFT_TABLE}\n`);
    },
  };
}

/** A table programmed with `iptables-restore --noflush`: one rule per target, the chain reloaded whole. */
export async function openIptablesTable(
  listenPort: number,
  run: ScriptRunner = runScript,
): Promise<NatTable> {
  const current = new Map<string, NatTarget>();
  const keyOf = (t: NatTarget) => `${t.protocol}/${t.ip}/${t.port}`;
  await run('iptables-restore', ['--noflush'], iptablesScript(listenPort, [], true));
  return {
    backend: 'iptables',
    async update(added, removed) {
      for (const t of removed) current.delete(keyOf(t));
      for (const t of added) current.set(keyOf(t), t);
      await run('iptables-restore', ['--noflush'], iptablesScript(listenPort, current.values(), false));
    },
    async clear() {
      current.clear();
      await run(
        'iptables-restore',
        ['--noflush'],
        `*nat\n:${IPTABLES_CHAIN} - [0:0]\n-D OUTPUT -j ${IPTABLES_CHAIN}\n-X ${IPTABLES_CHAIN}\nCOMMIT\n`,
      );
    },
  };
}

/** nftables, else iptables; NatUnavailableError naming why each failed. */
export function systemNat(run: ScriptRunner = runScript): NatOpener {
  return async (listenPort) => {
    const reasons: string[] = [];
    for (const [file, open] of [
      ['nft', openNftTable],
      ['iptables-restore', openIptablesTable],
    ] as const) {
      try {
        return await open(listenPort, run);
      } catch (err) {
        reasons.push(reasonOf(file, err));
      }
    }
    throw new NatUnavailableError(`cannot program NAT in the sidecar's namespace (${reasons.join('; ')})`);
  };
}

/**
 * Hands out the 127.64.0.0/10 aliases of NAT targets: four million, far more than any
 * namespace has destinations; released aliases are reused.
 */
export class NatAliases {
  private readonly byKey = new Map<string, string>();
  private readonly free: number[] = [];
  private next = 1;

  static readonly FIRST = (127 << 24) | (64 << 16);
  static readonly SIZE = 1 << 22;

  get size(): number {
    return this.byKey.size;
  }

  aliasFor(key: string): string {
    const known = this.byKey.get(key);
    if (known) return known;
    let n = this.free.pop();
    if (n === undefined) {
      if (this.next >= NatAliases.SIZE - 1) throw new Error('no NAT alias left in 127.64.0.0/10');
      n = this.next++;
    }
    const alias = intToIp(NatAliases.FIRST + n);
    this.byKey.set(key, alias);
    return alias;
  }

  release(key: string): void {
    const alias = this.byKey.get(key);
    if (!alias) return;
    this.byKey.delete(key);
    this.free.push(ipToInt(alias) - NatAliases.FIRST);
  }
}

function intToIp(n: number): string {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}
