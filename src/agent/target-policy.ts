/**
 * Which addresses the agent dials for a session. Never the pod's own loopback (the app and any
 * sidecar listening on 127.0.0.1, reached by sessions only through the intercept path) and never
 * link-local (cloud metadata endpoints hand out the node's credentials there), nor the unspecified
 * address, which Linux connects to loopback.
 */
import { lookup } from 'node:dns/promises';
import net, { BlockList } from 'node:net';
import { FORBIDDEN_TARGET_CODE } from '../tunnel/errors.js';

const FORBIDDEN = new BlockList();
FORBIDDEN.addSubnet('127.0.0.0', 8, 'ipv4');
FORBIDDEN.addSubnet('169.254.0.0', 16, 'ipv4');
FORBIDDEN.addSubnet('0.0.0.0', 8, 'ipv4');
FORBIDDEN.addAddress('::1', 'ipv6');
FORBIDDEN.addAddress('::', 'ipv6');
FORBIDDEN.addSubnet('fe80::', 10, 'ipv6');

/** Why `address` (an IP) may not be dialed, or undefined when it may. */
export function forbiddenReason(address: string): string | undefined {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  const ip = mapped ?? address;
  const family = net.isIP(ip);
  if (family === 0 || !FORBIDDEN.check(ip, family === 6 ? 'ipv6' : 'ipv4')) return undefined;
  return `${address} is a loopback or link-local address: the agent does not dial those (the pod's own app is reached only through the intercept, cloud metadata not at all)`;
}

/**
 * The address to dial for `host` (resolved with the pod's resolver, so a name that points at
 * loopback is caught too). Throws an error with code {@link FORBIDDEN_TARGET_CODE} for a refused
 * address, or the resolver's error.
 */
export async function permittedAddress(host: string, allowLocal: boolean): Promise<string> {
  const address = net.isIP(host) ? host : (await lookup(host)).address;
  const reason = allowLocal ? undefined : forbiddenReason(address);
  if (reason) throw Object.assign(new Error(reason), { code: FORBIDDEN_TARGET_CODE });
  return address;
}
