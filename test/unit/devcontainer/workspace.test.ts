import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { LoadedDevcontainer } from '../../../src/devcontainer/config.js';
import { folderTar, workspaceTarget, workspaceVolumeName } from '../../../src/devcontainer/workspace.js';
import { readTarEntries } from '../../../src/kube/volumes/copy.js';

/** The devcontainer.json variable, spelled out. */
const LWF = '$' + '{localWorkspaceFolder}';

describe('workspace placement pieces', () => {
  it('mounts at workspaceFolder when absolute, else /workspaces/<folder>', () => {
    const loaded = (workspaceFolder?: string) =>
      ({
        workspaceFolder: '/home/me/shop',
        configFile: '',
        config: workspaceFolder ? { workspaceFolder } : {},
        doc: {},
      }) as unknown as LoadedDevcontainer;
    assert.equal(workspaceTarget(loaded()), '/workspaces/shop');
    assert.equal(workspaceTarget(loaded('/src')), '/src');
    assert.equal(workspaceTarget(loaded(`${LWF}`)), '/workspaces/shop');
  });

  it('names the copy volume after the folder and the engine', () => {
    const a = workspaceVolumeName('tcp://h:2375', '/home/me/my shop');
    assert.match(a, /^devbox-workspace-my-shop-[0-9a-f]{12}$/);
    assert.notEqual(a, workspaceVolumeName('unix:///var/run/docker.sock', '/home/me/my shop'));
  });

  it('tars the folder without what .dockerignore excludes, symlinks kept', async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-ws-'));
    try {
      await fs.mkdir(join(dir, 'src'));
      await fs.mkdir(join(dir, 'node_modules', 'x'), { recursive: true });
      await fs.writeFile(join(dir, 'src', 'a.js'), 'a');
      await fs.writeFile(join(dir, 'node_modules', 'x', 'b.js'), 'b');
      await fs.writeFile(join(dir, 'secret.env'), 's');
      await fs.writeFile(join(dir, '.dockerignore'), 'node_modules\n*.env\n');
      await fs.symlink('src/a.js', join(dir, 'link'));
      const entries = await readTarEntries(await folderTar(dir));
      const names = entries.map((e) => e.path).sort();
      assert.deepEqual(names, ['/.dockerignore', '/link', '/src', '/src/a.js']);
      assert.equal(entries.find((e) => e.path === '/src/a.js')?.content?.toString(), 'a');
      assert.equal(entries.find((e) => e.path === '/link')?.linkname, 'src/a.js');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
