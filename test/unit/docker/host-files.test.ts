import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type HostFs,
  hostPathEntries,
  libraryPathFor,
  parseLddOutput,
} from '../../../src/docker/host-files.js';

const glibcNode = `	linux-vdso.so.1 (0x00007ffd7c5f6000)
	libdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f50f8000000)
	libstdc++.so.6 => /lib/x86_64-linux-gnu/libstdc++.so.6 (0x00007f50f7c00000)
	libm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f50f7f20000)
	libgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f50f7f00000)
	libpthread.so.0 => /lib/x86_64-linux-gnu/libpthread.so.0 (0x00007f50f7efb000)
	libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f50f7a1e000)
	/lib64/ld-linux-x86-64.so.2 (0x00007f50f8018000)
`;

const muslNode = `	/lib/ld-musl-x86_64.so.1 (0x7f1c5b6a0000)
	libstdc++.so.6 => /usr/lib/libstdc++.so.6 (0x7f1c57c00000)
	libgcc_s.so.1 => /usr/lib/libgcc_s.so.1 (0x7f1c5b66a000)
	libc.musl-x86_64.so.1 => /lib/ld-musl-x86_64.so.1 (0x7f1c5b6a0000)
`;

describe('parseLddOutput', () => {
  it('lists glibc libraries and the loader, skipping the vDSO', () => {
    const result = parseLddOutput(glibcNode);
    assert.equal(result.isStatic, false);
    assert.deepEqual(result.missing, []);
    assert.deepEqual(result.libraries, [
      '/lib/x86_64-linux-gnu/libdl.so.2',
      '/lib/x86_64-linux-gnu/libstdc++.so.6',
      '/lib/x86_64-linux-gnu/libm.so.6',
      '/lib/x86_64-linux-gnu/libgcc_s.so.1',
      '/lib/x86_64-linux-gnu/libpthread.so.0',
      '/lib/x86_64-linux-gnu/libc.so.6',
      '/lib64/ld-linux-x86-64.so.2',
    ]);
  });

  it('lists musl libraries once even when libc and the loader are one file', () => {
    assert.deepEqual(parseLddOutput(muslNode).libraries, [
      '/lib/ld-musl-x86_64.so.1',
      '/usr/lib/libstdc++.so.6',
      '/usr/lib/libgcc_s.so.1',
    ]);
  });

  it('recognizes static executables and missing libraries', () => {
    assert.equal(parseLddOutput('\tnot a dynamic executable\n').isStatic, true);
    assert.equal(parseLddOutput('\tstatically linked\n').isStatic, true);
    const missing = parseLddOutput('\tlibssl.so.3 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x1)\n');
    assert.deepEqual(missing.missing, ['libssl.so.3']);
    assert.deepEqual(missing.libraries, ['/lib/libc.so.6']);
  });
});

/** A merged-/usr Debian: /lib → usr/lib, /lib64 → usr/lib64, the loader linked absolutely. */
function fakeFs(): HostFs {
  const links: Record<string, string> = {
    '/lib': 'usr/lib',
    '/lib64': 'usr/lib64',
    '/usr/lib64/ld-linux-x86-64.so.2': '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
    '/usr/lib/x86_64-linux-gnu/libstdc++.so.6': 'libstdc++.so.6.0.30',
    '/usr/lib/x86_64-linux-gnu/loop': 'loop',
  };
  const dirs = new Set(['/usr', '/usr/lib', '/usr/lib64', '/usr/lib/x86_64-linux-gnu']);
  const files: Record<string, number> = {
    '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2': 215000,
    '/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30': 2190440,
  };
  return {
    async lstat(path) {
      const kind = path in links ? 'link' : dirs.has(path) ? 'dir' : path in files ? 'file' : undefined;
      if (!kind) throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
      return {
        isSymbolicLink: () => kind === 'link',
        isDirectory: () => kind === 'dir',
        isFile: () => kind === 'file',
        mode: kind === 'file' ? 0o100755 : 0o40755,
        size: files[path] ?? 0,
      };
    },
    async readlink(path) {
      return links[path]!;
    },
  };
}

describe('hostPathEntries', () => {
  it('reproduces every symlink on the way to the loader and the file at its real path', async () => {
    const entries = await hostPathEntries('/lib64/ld-linux-x86-64.so.2', fakeFs());
    assert.deepEqual(entries, [
      { type: 'symlink', path: '/lib64', target: 'usr/lib64' },
      {
        type: 'symlink',
        path: '/usr/lib64/ld-linux-x86-64.so.2',
        target: '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
      },
      { type: 'symlink', path: '/lib', target: 'usr/lib' },
      {
        type: 'file',
        path: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2',
        mode: 0o755,
        source: { hostPath: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', size: 215000 },
      },
    ]);
  });

  it('follows relative links in the last component', async () => {
    const entries = await hostPathEntries('/lib/x86_64-linux-gnu/libstdc++.so.6', fakeFs());
    assert.deepEqual(
      entries.map((e) => (e.type === 'symlink' ? `${e.path} -> ${e.target}` : e.path)),
      [
        '/lib -> usr/lib',
        '/usr/lib/x86_64-linux-gnu/libstdc++.so.6 -> libstdc++.so.6.0.30',
        '/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30',
      ],
    );
  });

  it('stops on symlink loops and missing files with clear errors', async () => {
    await assert.rejects(
      hostPathEntries('/usr/lib/x86_64-linux-gnu/loop', fakeFs()),
      /Too many symbolic links/,
    );
    await assert.rejects(
      hostPathEntries('/usr/lib/nothing.so', fakeFs()),
      /Cannot read \/usr\/lib\/nothing.so/,
    );
  });
});

describe('libraryPathFor', () => {
  it('is needed only for directories the loader does not search by itself', () => {
    const system = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib', '/usr/lib'];
    assert.equal(libraryPathFor(['/lib/x86_64-linux-gnu'], system), undefined);
    assert.equal(libraryPathFor(['/lib/x86_64-linux-gnu', '/opt/node/lib'], system), '/opt/node/lib');
    assert.equal(libraryPathFor(['/usr/lib', '/lib'], undefined), '/usr/lib:/lib');
  });
});
