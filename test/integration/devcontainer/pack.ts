/**
 * devbox as `npm pack` makes it, with its production dependencies bundled
 * (`bundleDependencies`), so the devbox Feature can install it in an image
 * with neither a registry nor npm — the way an offline mirror would ship it.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './helpers.js';

const run = promisify(execFile);

/** Packs the built tree (dist/, templates/, containers/) into `<dir>/devbox-<version>.tgz`. */
export async function packBundled(dir: string): Promise<string> {
  const stage = await fs.mkdtemp(join(tmpdir(), 'devbox-pack-'));
  try {
    const manifest = JSON.parse(await fs.readFile(join(repoRoot, 'package.json'), 'utf8')) as Record<
      string,
      any
    >;
    manifest.bundleDependencies = Object.keys(manifest.dependencies ?? {});
    delete manifest.scripts;
    delete manifest.devDependencies;
    await fs.writeFile(join(stage, 'package.json'), JSON.stringify(manifest, null, 2));
    for (const path of ['dist/src', 'dist/bundle', 'templates', 'containers']) {
      await fs.cp(join(repoRoot, path), join(stage, path), { recursive: true });
    }
    // The production dependency tree as npm resolved it here (top-level folders hold their nested ones).
    // npm ls exits non-zero for tree warnings (an override, say) while listing everything.
    const { stdout } = await run('npm', ['ls', '--omit=dev', '--all', '--parseable'], {
      cwd: repoRoot,
      maxBuffer: 16 << 20,
    }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
    const top = new Set<string>();
    for (const line of stdout.split('\n').slice(1)) {
      const rel = line.slice(repoRoot.length).replace(/^\//, '');
      const match = /^node_modules\/(@[^/]+\/[^/]+|[^/@][^/]*)/.exec(rel);
      if (match) top.add(match[0]);
    }
    for (const path of top) {
      await fs.cp(join(repoRoot, path), join(stage, path), { recursive: true, verbatimSymlinks: true });
    }
    const packed = await run('npm', ['pack', '--pack-destination', dir, '--json'], {
      cwd: stage,
      maxBuffer: 64 << 20,
    });
    const [info] = JSON.parse(packed.stdout) as { filename: string }[];
    return join(dir, info!.filename);
  } finally {
    await fs.rm(stage, { recursive: true, force: true });
  }
}
