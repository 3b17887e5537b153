/**
 * The folder layout is the architecture: holds the import graph of src/ to it, so
 * that a cycle between folders or a daemon reaching into the CLI side fails here
 * rather than in review.
 *
 * - No cycle between the top-level folders of src/.
 * - The daemons (agent, sidecar) and everything they import reach only their own
 *   folder, the wire protocol (tunnel), util and the shared Kubernetes access core
 *   (kube/api); never the CLI, the session layer, Docker or dev containers, and
 *   never the full Kubernetes client or dockerode at run time.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'src');
const DAEMONS = ['agent', 'sidecar'];
const DAEMON_MAY_REACH = ['tunnel', 'util', 'kube/api'];
/** Where the daemons' start-up env is encoded for them. */
const DAEMON_CONTRACTS = ['tunnel/agent-contract.ts'];
const HEAVY_PACKAGES = ['@kubernetes/client-node', 'dockerode'];

interface Import {
  from: string;
  /** A path under src/ for relative imports, else the bare package name. */
  to: string;
  typeOnly: boolean;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return sourceFiles(path);
      return name.endsWith('.ts') ? [path] : [];
    });
}

const IMPORT =
  /\b(import|export)\s+(type\s+)?(?:([^'";]*?)\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** Static and dynamic imports of one source file. */
function importsOf(file: string, text: string): Import[] {
  const from = relative(SRC, file);
  const found: Import[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[4] ?? m[5];
    if (spec === undefined) continue;
    const clause = m[3] ?? '';
    const allTyped =
      /^\{[^}]*\}$/.test(clause.trim()) &&
      clause
        .replace(/[{}\s]/g, '')
        .split(',')
        .every((s) => s === '' || s.startsWith('type'));
    const typeOnly = m[2] !== undefined || (clause !== '' && allTyped);
    const to = spec.startsWith('.')
      ? relative(SRC, resolve(dirname(file), spec)).replace(/\.js$/, '.ts')
      : packageName(spec);
    found.push({ from, to, typeOnly });
  }
  return found;
}

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

function folderOf(path: string): string {
  return path.split('/')[0];
}

/** Folder cycles in a graph of folder → folders it imports, each as a path that returns to its start. */
function folderCycles(edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): void => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of [...(edges.get(node) ?? [])].sort()) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of [...edges.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

const imports = sourceFiles(SRC).flatMap((file) => importsOf(file, readFileSync(file, 'utf8')));
const local = imports.filter((i) => !i.to.startsWith('..') && i.to.endsWith('.ts'));

describe('architecture of src/', () => {
  it('finds a cycle in a graph that has one, and none in one that has none', () => {
    const graph = (pairs: string[]) => {
      const edges = new Map<string, Set<string>>();
      for (const pair of pairs) {
        const [a, b] = pair.split('>');
        edges.set(a, (edges.get(a) ?? new Set()).add(b));
      }
      return edges;
    };
    assert.deepEqual(folderCycles(graph(['cli>session', 'session>kube', 'kube>util'])), []);
    assert.deepEqual(folderCycles(graph(['cli>session', 'session>devcontainer', 'devcontainer>session'])), [
      ['session', 'devcontainer', 'session'],
    ]);
    const parsed = importsOf(
      join(SRC, 'x', 'a.ts'),
      [
        "import type { A } from '../y/a.js';",
        "import { type B, type C } from '../z/b.js';",
        "import { D } from '@kubernetes/client-node';",
        "const e = await import('../w/e.js');",
      ].join('\n'),
    );
    assert.deepEqual(parsed, [
      { from: 'x/a.ts', to: 'y/a.ts', typeOnly: true },
      { from: 'x/a.ts', to: 'z/b.ts', typeOnly: true },
      { from: 'x/a.ts', to: '@kubernetes/client-node', typeOnly: false },
      { from: 'x/a.ts', to: 'w/e.ts', typeOnly: false },
    ]);
  });

  it('has no import cycle between folders', () => {
    const edges = new Map<string, Set<string>>();
    for (const { from, to } of local) {
      const [a, b] = [folderOf(from), folderOf(to)];
      if (a === b) continue;
      edges.set(a, (edges.get(a) ?? new Set()).add(b));
    }
    const cycles = folderCycles(edges);
    const witnesses = cycles.map((cycle) =>
      cycle
        .slice(1)
        .map((b, k) => local.find((i) => folderOf(i.from) === cycle[k] && folderOf(i.to) === b))
        .map((i) => `${i?.from} → ${i?.to}`)
        .join(', '),
    );
    assert.deepEqual(witnesses, [], 'folders import each other');
  });

  it('reads DEVBOX_* settings of the CLI side only in settings/ (and the debug switch in util/log.ts)', () => {
    const readers = sourceFiles(SRC)
      .map((file) => relative(SRC, file))
      .filter((file) => !DAEMONS.includes(folderOf(file)) && !DAEMON_CONTRACTS.includes(file))
      .filter((file) => /\benv(\?\.|\.|\[')DEVBOX_/.test(readFileSync(join(SRC, file), 'utf8')));
    assert.deepEqual(readers, ['settings/index.ts', 'util/log.ts']);
  });

  for (const daemon of DAEMONS) {
    it(`keeps the ${daemon} daemon apart from the CLI side, and free of the heavy clients`, () => {
      const reached = new Set<string>();
      const pending = [`${daemon}/main.ts`];
      const wrong: string[] = [];
      while (pending.length) {
        const file = pending.pop() as string;
        if (reached.has(file)) continue;
        reached.add(file);
        for (const i of imports.filter((i) => i.from === file && !i.typeOnly)) {
          if (HEAVY_PACKAGES.includes(i.to)) wrong.push(`${i.from} → ${i.to}`);
          if (!i.to.endsWith('.ts')) continue;
          const allowed = folderOf(i.to) === daemon || DAEMON_MAY_REACH.some((p) => i.to.startsWith(`${p}/`));
          if (!allowed) wrong.push(`${i.from} → ${i.to}`);
          pending.push(i.to);
        }
      }
      assert.ok(reached.size > 3, `walked only ${[...reached].join(', ')}`);
      assert.deepEqual(wrong, [], `${daemon} reaches outside ${[daemon, ...DAEMON_MAY_REACH].join(', ')}`);
    });
  }
});
