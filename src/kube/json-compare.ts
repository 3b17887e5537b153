/**
 * Comparing API objects as the API server sees them: a key set to null is the same
 * as a missing key (Go omits both), array order matters, object key order does not.
 */

type Json = unknown;

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function presentKeys(o: Record<string, Json>): string[] {
  return Object.keys(o).filter((k) => o[k] !== null && o[k] !== undefined);
}

function joinPath(path: string, key: string): string {
  if (!/^[A-Za-z_][\w-]*$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path ? `${path}.${key}` : key;
}

/** Paths where `a` and `b` differ (`spec.template.spec.containers[1].image`), at most `limit`. */
export function differingPaths(a: Json, b: Json, limit = 20): string[] {
  const out: string[] = [];
  const walk = (x: Json, y: Json, path: string): void => {
    if (out.length >= limit) return;
    if (Array.isArray(x) && Array.isArray(y)) {
      if (x.length !== y.length) {
        out.push(path || '.');
        return;
      }
      for (let i = 0; i < x.length; i++) walk(x[i], y[i], `${path}[${i}]`);
      return;
    }
    if (isObject(x) && isObject(y)) {
      const keys = new Set([...presentKeys(x), ...presentKeys(y)]);
      for (const k of [...keys].sort()) walk(x[k] ?? null, y[k] ?? null, joinPath(path, k));
      return;
    }
    if (!Object.is(x ?? null, y ?? null)) out.push(path || '.');
  };
  walk(a, b, '');
  return out;
}

/** True when `a` and `b` are the same API content. */
export function sameContent(a: Json, b: Json): boolean {
  return differingPaths(a, b, 1).length === 0;
}
