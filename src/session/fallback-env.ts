/**
 * Without NET_ADMIN the sidecar serves each ClusterIP on a 127.x alias and rewrites DNS answers
 * to it (its fallback mode). The kubelet's Service variables (`INVENTORY_SERVICE_HOST`,
 * `INVENTORY_PORT=tcp://10.96.0.20:80`, `INVENTORY_PORT_80_TCP_ADDR`, …) still name the real
 * addresses, which a local container cannot reach: these point them at the aliases.
 */
const ADDRESS_KEY = /_(SERVICE_HOST|PORT_\d+_(TCP|UDP|SCTP)_ADDR)$/;
const URL_KEY = /_PORT(_\d+_(TCP|UDP|SCTP))?$/;
const URL_VALUE = /^(tcp|udp|sctp):\/\/([^/]+):(\d+)$/;

/** `env` with every Service variable holding a ClusterIP of `aliases` changed to its alias; the keys changed. */
export function serviceVariablesOnAliases(
  env: Readonly<Record<string, string>>,
  aliases: ReadonlyMap<string, string>,
): { env: Record<string, string>; changed: string[] } {
  const out: Record<string, string> = { ...env };
  const changed: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    let next: string | undefined;
    if (ADDRESS_KEY.test(key)) {
      next = aliases.get(value);
    } else if (URL_KEY.test(key)) {
      const m = URL_VALUE.exec(value);
      const alias = m ? aliases.get(m[2]!) : undefined;
      if (m && alias) next = `${m[1]}://${alias}:${m[3]}`;
    }
    if (next !== undefined && next !== value) {
      out[key] = next;
      changed.push(key);
    }
  }
  return { env: out, changed };
}
