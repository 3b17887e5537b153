/**
 * Seeded fuzzing of the names in the tar the agent sends for a mount's contents (outside
 * input: any pod with the workload's labels can answer for the agent). Whatever the entries,
 * the copy throws only PROTOCOL errors, and nothing it lets through lands or points outside
 * the mount, checked by writing the accepted entries into a real directory as an extractor
 * that follows symlinks would.
 */
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { after, describe, it } from 'node:test';
import { MountEntryGuard, mountContentsTar, readTarEntries } from '../../../src/kube/volumes/copy.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { type TarAgentEntry, tarAgent } from '../../support/agent-tar.js';
import { fuzz, fuzzAsync, type Rng } from '../../support/fuzz.js';

const MOUNT = '/data/app';
const scratch = mkdtempSync(join(tmpdir(), 'devbox-fuzz-tar-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function randomPath(rng: Rng, absolute: boolean): string {
  const parts = Array.from({ length: 1 + rng.int(4) }, () =>
    rng.pick(['a', 'b', 'sub', '..', '.', '', 'data', 'app', 'etc', rng.string(1 + rng.int(3), 'ab.\\ ')]),
  );
  return `${absolute ? '/' : rng.chance(4) ? './' : ''}${parts.join('/')}${rng.chance(5) ? '/' : ''}`;
}

function randomEntry(rng: Rng): TarAgentEntry {
  const type = rng.pick(['file', 'file', 'directory', 'symlink', 'symlink', 'link', 'fifo'] as const);
  const name = randomPath(rng, rng.chance(8));
  if (type !== 'symlink' && type !== 'link') return [name, type];
  const target = rng.chance(3)
    ? `${rng.pick(['/data/app/', '/data/', '/'])}${randomPath(rng, false)}`
    : randomPath(rng, false);
  return [name, type, target];
}

/** A directory standing for the container's root, and the mount inside it. */
function freshRoot(round: number): { root: string; mount: string } {
  const root = join(scratch, String(round));
  const mount = join(root, MOUNT);
  mkdirSync(mount, { recursive: true });
  return { root, mount };
}

/** Whether `path` (on disk) resolves, through every symlink, to the mount or below it. */
function resolvesInside(path: string, mount: string): boolean {
  let real: string;
  try {
    real = realpathSync(path);
  } catch {
    return true; // a dangling link writes nothing
  }
  return real === mount || real.startsWith(`${mount}/`);
}

/**
 * Writes an accepted entry as a naive extractor would (parents created, symlinks in the path
 * followed), absolute link targets taken inside `root` like in the container, and checks that
 * what was written is inside the mount.
 */
function extract(root: string, mount: string, path: string, entry: TarAgentEntry): void {
  const [, type, extra] = entry;
  const at = join(mount, path);
  if (path !== '') {
    const parent = dirname(at);
    try {
      mkdirSync(parent, { recursive: true });
    } catch (err) {
      // A file or a dangling link where a parent directory should be: extractors fail the entry.
      if (
        (err as NodeJS.ErrnoException).code === 'ENOTDIR' ||
        (err as NodeJS.ErrnoException).code === 'EEXIST'
      )
        return;
      throw err;
    }
    assert.ok(resolvesInside(parent, mount), `parent of ${path} resolves outside the mount`);
  }
  try {
    const st = lstatSync(at);
    if (!(st.isDirectory() && type === 'directory')) rmSync(at, { recursive: true, force: true });
  } catch {}
  if (type === 'directory') {
    try {
      mkdirSync(at, { recursive: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
      throw err;
    }
  } else if (type === 'file') writeFileSync(at, 'x');
  else if (type === 'symlink') {
    symlinkSync(extra!.startsWith('/') ? join(root, extra!) : extra!, at);
    assert.ok(resolvesInside(at, mount), `symlink ${path} -> ${extra} resolves outside the mount`);
  }
  assert.ok(resolvesInside(at, mount), `${path} resolves outside the mount`);
}

describe('fuzz: tar entry names from the agent', () => {
  it('the entry guard throws only PROTOCOL errors, and what it lets through stays inside the mount on disk', () => {
    fuzz('tar entry guard', { rounds: 50 }, (rng, round) => {
      const { root, mount } = freshRoot(round);
      const guard = new MountEntryGuard(MOUNT);
      for (let i = 0; i < 12; i++) {
        const entry = randomEntry(rng);
        const [name, type, extra] = entry;
        let path: string;
        try {
          path = guard.check({ name, type, linkname: extra });
        } catch (err) {
          assert.ok(isDevboxError(err, 'PROTOCOL'), String(err));
          assert.ok(err.message.includes(JSON.stringify(name)), err.message);
          continue;
        }
        assert.ok(
          !path.split('/').includes('..') && !path.startsWith('/'),
          `accepted ${JSON.stringify(name)} as ${path}`,
        );
        assert.equal(posix.normalize(join(MOUNT, path)).startsWith(MOUNT), true);
        extract(root, mount, path, entry);
      }
      rmSync(root, { recursive: true, force: true });
    });
  });

  it('the copy of a hostile tar stream emits only entries inside the mount, or fails with a typed error', async () => {
    await fuzzAsync('tar copy', { rounds: 40 }, async (rng) => {
      const entries = Array.from({ length: 1 + rng.int(8) }, () => randomEntry(rng));
      const kind = rng.pick([undefined, 'directory', 'file'] as const);
      let written: Awaited<ReturnType<typeof readTarEntries>>;
      try {
        written = await readTarEntries(
          await mountContentsTar(tarAgent(entries), {
            agentPath: '/devbox-pod/data/app',
            mountPath: MOUNT,
            readOnly: false,
            kind,
          }),
        );
      } catch (err) {
        assert.ok(isDevboxError(err, 'PROTOCOL') || isDevboxError(err, 'TUNNEL'), String(err));
        return;
      }
      for (const e of written) {
        assert.ok(
          e.path === MOUNT || e.path.startsWith(`${MOUNT}/`),
          `${e.path} in ${JSON.stringify(entries)}`,
        );
        assert.ok(!e.path.split('/').includes('..'), e.path);
        assert.ok(['file', 'directory', 'symlink'].includes(e.type ?? ''), JSON.stringify(e));
        // A single-file mount is only ever that file.
        if (kind === 'file') assert.deepEqual([e.path, e.type], [MOUNT, 'file'], JSON.stringify(entries));
      }
    });
  });
});
