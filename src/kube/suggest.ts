/** "Did you mean" suggestions for names typed on the command line. */

/** Levenshtein distance, case-insensitive. */
export function editDistance(a: string, b: string): number {
  const s = a.toLowerCase();
  const t = b.toLowerCase();
  let prev = Array.from({ length: t.length + 1 }, (_, i) => i);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      const cost = s[i - 1] === t[j - 1] ? 0 : 1;
      cur[j] = Math.min((prev[j] as number) + 1, (cur[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
    }
    prev = cur;
  }
  return prev[t.length] as number;
}

/**
 * The candidates closest to `target`: within an edit distance of a third of the
 * longer name (at least 2), or containing it; nearest first, at most `limit`.
 */
export function closestNames(target: string, candidates: readonly string[], limit = 3): string[] {
  const t = target.toLowerCase();
  return [...new Set(candidates)]
    .map((c) => {
      const d = editDistance(t, c);
      const contains = c.toLowerCase().includes(t) || t.includes(c.toLowerCase());
      return { c, d, ok: contains || d <= Math.max(2, Math.floor(Math.max(t.length, c.length) / 3)) };
    })
    .filter((x) => x.ok)
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, limit)
    .map((x) => x.c);
}
