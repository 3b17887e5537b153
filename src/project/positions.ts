/** Where a key or value of a parsed YAML document lies, for messages that name file:line:column. */
import { isMap, isScalar, isSeq, type LineCounter, type Node, type Pair } from 'yaml';

export interface Located {
  line: number;
  col: number;
}

/** A JSON pointer (`/workloads/api/env`) as its keys, unescaped. */
export function pointerKeys(pointer: string): string[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split('/')
    .map((k) => k.replaceAll('~1', '/').replaceAll('~0', '~'));
}

/**
 * The position of the node at `keys` below `root`; with `key` set, of that key of the map
 * found there (for unknown or misnamed keys). Falls back to the nearest node that exists.
 */
export function locate(
  root: unknown,
  keys: readonly string[],
  lines: LineCounter,
  key?: string,
): Located | undefined {
  let node = root as Node | null | undefined;
  let keyNode: Node | undefined;
  for (const k of key === undefined ? keys : [...keys, key]) {
    if (isMap(node)) {
      const pair = (node.items as Pair<Node, Node>[]).find(
        (p) => isScalar(p.key) && String(p.key.value) === k,
      );
      if (!pair) break;
      keyNode = pair.key;
      node = pair.value;
    } else if (isSeq(node)) {
      const item = node.items[Number(k)] as Node | undefined;
      if (!item) break;
      keyNode = undefined;
      node = item;
    } else break;
  }
  const at = key !== undefined ? (keyNode ?? node) : (node ?? keyNode);
  const offset = at?.range?.[0];
  return offset === undefined ? undefined : lines.linePos(offset);
}
