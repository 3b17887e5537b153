/**
 * Host keys of `ssh://` Docker hosts, checked against the user's known_hosts as the ssh client
 * does (plain and hashed host names, `[host]:port` for other ports, `@revoked` lines). devbox
 * accepts no key it has not seen there: run `ssh` to the host once to accept it.
 */
import { createHmac } from 'node:crypto';

/** The name a known_hosts line gives `host` on `port`. */
function entryName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function nameMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  return pattern
    .split(',')
    .some((p) => !p.startsWith('!') && !p.includes('*') && !p.includes('?') && p === name);
}

/** Whether `key` (the server's raw public key blob) is a known, unrevoked key of `host`:`port`. */
export function isKnownHostKey(knownHosts: string, host: string, port: number, key: Buffer): boolean {
  const name = entryName(host, port);
  const presented = key.toString('base64');
  let known = false;
  for (const raw of knownHosts.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    const marker = fields[0]!.startsWith('@') ? fields.shift() : undefined;
    const [names, , blob] = fields;
    if (!names || !blob || !nameMatches(names, name) || blob !== presented) continue;
    if (marker === '@revoked') return false;
    if (marker === undefined) known = true;
  }
  return known;
}
