/**
 * Adding and removing addresses on the sidecar's `lo`, and the 127.x aliases
 * used instead when the container lacks NET_ADMIN.
 */
import { execFile } from 'node:child_process';
import { isIPv6 } from 'node:net';
import { DevboxError } from '../util/errors.js';

/** Puts addresses on the loopback interface; injectable so tests need no privilege. */
export interface AddressAdder {
  /** Adds `ip` (a host address); succeeds when it is already there. Throws AddressPermissionError without NET_ADMIN. */
  add(ip: string): Promise<void>;
  /** Removes `ip`; succeeds when it is already gone. */
  remove(ip: string): Promise<void>;
}

/** Addresses cannot be changed here: the container lacks NET_ADMIN (or the `ip` command). */
export class AddressPermissionError extends DevboxError {
  constructor(
    message: string,
    cause?: unknown,
    hint = 'give the sidecar container NET_ADMIN (docker run --cap-add NET_ADMIN) to use the real cluster addresses',
  ) {
    super('FORBIDDEN', message, { cause, hint });
    this.name = 'AddressPermissionError';
  }
}

type Runner = (file: string, args: string[]) => Promise<void>;

const runCommand: Runner = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(file, args, { timeout: 10_000 }, (err, _stdout, stderr) => {
      if (!err) return resolve();
      reject(Object.assign(err, { stderr: String(stderr) }));
    });
  });

function stderrOf(err: unknown): string {
  return String((err as { stderr?: string })?.stderr ?? (err as Error)?.message ?? err);
}

/**
 * An AddressAdder running `ip addr add|del <ip>/32 dev lo` (`-6 … /128` for IPv6; loopback skips
 * duplicate address detection, and busybox's `ip` has no `nodad`). Works with iproute2 and busybox.
 */
export function ipCommandAdder(run: Runner = runCommand, ipBinary = 'ip'): AddressAdder {
  const args = (verb: 'add' | 'del', ip: string) =>
    isIPv6(ip) ? ['-6', 'addr', verb, `${ip}/128`, 'dev', 'lo'] : ['addr', verb, `${ip}/32`, 'dev', 'lo'];
  return {
    async add(ip) {
      try {
        await run(ipBinary, args('add', ip));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new AddressPermissionError(
            `cannot add ${ip} to lo: no ${ipBinary} command in the sidecar image`,
            err,
            'use a sidecar image with iproute2 or busybox ip',
          );
        }
        const text = stderrOf(err);
        // iproute2 < 5 and busybox say "File exists"; newer iproute2 "Address already assigned".
        if (/File exists|already assigned/i.test(text)) return;
        if (/Operation not permitted|EPERM|permission denied/i.test(text)) {
          throw new AddressPermissionError(`cannot add ${ip} to lo: ${text.trim()}`, err);
        }
        throw new DevboxError('INTERNAL', `ip addr add ${ip} failed: ${text.trim()}`, { cause: err });
      }
    },
    async remove(ip) {
      try {
        await run(ipBinary, args('del', ip));
      } catch (err) {
        const text = stderrOf(err);
        if (/Cannot assign requested address|not found|does not exist|No such/i.test(text)) return;
        throw new DevboxError('INTERNAL', `ip addr del ${ip} failed: ${text.trim()}`, { cause: err });
      }
    },
  };
}

/** An AddressAdder that does nothing: 127.0.0.0/8 is already routed to `lo`. */
export const loopbackRangeAdder: AddressAdder = {
  add: async () => {},
  remove: async () => {},
};

/**
 * Hands out 127.x aliases for cluster addresses in fallback mode. The preferred
 * alias of a.b.c.d is 127.b.c.d (stable across restarts, easy to read); when
 * that is taken or would land in 127.0.x.x (used by the container itself), the
 * next free address from 127.255.0.1 upward is used.
 */
export class AliasAllocator {
  private readonly byReal = new Map<string, string>();
  private readonly taken = new Set<string>();
  private next = 1;

  /** The alias of `realIp`, allocating one; undefined for IPv6 addresses (no 127.x equivalent). */
  aliasFor(realIp: string): string | undefined {
    const known = this.byReal.get(realIp);
    if (known) return known;
    if (isIPv6(realIp)) return undefined;
    const [, b, c, d] = realIp.split('.');
    let alias = `127.${b}.${c}.${d}`;
    if (b === '0' || this.taken.has(alias)) alias = this.spare();
    this.byReal.set(realIp, alias);
    this.taken.add(alias);
    return alias;
  }

  /** The alias already given to `realIp`, without allocating. */
  lookup(realIp: string): string | undefined {
    return this.byReal.get(realIp);
  }

  release(realIp: string): void {
    const alias = this.byReal.get(realIp);
    if (!alias) return;
    this.byReal.delete(realIp);
    this.taken.delete(alias);
  }

  private spare(): string {
    for (;;) {
      const n = this.next++;
      const alias = `127.255.${(n >> 8) & 0xff}.${n & 0xff}`;
      if (!this.taken.has(alias) && (n & 0xff) !== 0) return alias;
    }
  }
}
