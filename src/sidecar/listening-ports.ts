/**
 * Ports bound on the wildcard address in the sidecar's network namespace, which the service
 * container shares: `/proc/net/*` shows the sockets of the namespace of the reader. A cluster
 * address bound on such a port (the fallback without NAT) would fail, and binding it first would
 * make the app's own `listen()` fail with EADDRINUSE.
 */
import { readFileSync } from 'node:fs';

/** `TCP/8080`, `UDP/53`, … */
export type ListeningPorts = () => Set<string>;

const WILDCARD = new Set(['00000000', '00000000000000000000000000000000']);
const TCP_LISTEN = '0A';

/**
 * The wildcard-bound ports of one `/proc/net/{tcp,tcp6,udp,udp6}` table: TCP sockets in LISTEN
 * state, UDP sockets of any state.
 */
export function parseProcNet(text: string, protocol: 'TCP' | 'UDP'): string[] {
  const out: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [address, portHex] = (fields[1] ?? '').split(':');
    if (!address || !portHex || !WILDCARD.has(address)) continue;
    if (protocol === 'TCP' && fields[3] !== TCP_LISTEN) continue;
    out.push(`${protocol}/${Number.parseInt(portHex, 16)}`);
  }
  return out;
}

/** Reads the namespace's tables; a table that cannot be read counts as empty. */
export function procListeningPorts(
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): Set<string> {
  const out = new Set<string>();
  for (const [file, protocol] of [
    ['tcp', 'TCP'],
    ['tcp6', 'TCP'],
    ['udp', 'UDP'],
    ['udp6', 'UDP'],
  ] as const) {
    try {
      for (const key of parseProcNet(read(`/proc/net/${file}`), protocol)) out.add(key);
    } catch {
      // no IPv6 in this namespace, or no /proc
    }
  }
  return out;
}
