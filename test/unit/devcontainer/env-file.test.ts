import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  formatEnvFile,
  formatLabelFile,
  gitIgnoreBeside,
  writePrivateFile,
} from '../../../src/devcontainer/env-file.js';

describe('env files', () => {
  it('writes KEY=value lines verbatim and sets aside what the format cannot carry', () => {
    const { text, rest } = formatEnvFile({
      A: '1',
      SPACES: '  kept  ',
      QUOTES: '"not stripped"',
      EQ: 'a=b',
      EMPTY: '',
      CERT: '-----BEGIN-----\nabc\n-----END-----',
      'BAD NAME': 'x',
      '#HASH': 'y',
    });
    assert.equal(text, 'A=1\nSPACES=  kept  \nQUOTES="not stripped"\nEQ=a=b\nEMPTY=\n');
    assert.deepEqual(Object.keys(rest), ['CERT', 'BAD NAME', '#HASH']);
    assert.equal(formatEnvFile({}).text, '');
  });

  it('writes labels one per line without line breaks', () => {
    assert.equal(
      formatLabelFile({ 'devbox.session': 'abc', 'devbox.workload': 'deployment/api' }),
      'devbox.session=abc\ndevbox.workload=deployment/api\n',
    );
  });

  it('writes secrets 0600 (also over a wider file) and git-ignores them beside', async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-envfile-'));
    try {
      const file = join(dir, 'sub', 'session.env');
      await fs.mkdir(join(dir, 'sub'));
      await fs.writeFile(file, 'OLD=1\n', { mode: 0o644 });
      await writePrivateFile(file, 'A=1\n');
      assert.equal((await fs.stat(file)).mode & 0o777, 0o600);
      assert.equal(await fs.readFile(file, 'utf8'), 'A=1\n');
      assert.match(await fs.readFile(join(dir, 'sub', '.gitignore'), 'utf8'), /^\/session\.env$/m);
      await writePrivateFile(file, 'A=2\n');
      await gitIgnoreBeside(join(dir, 'sub', 'session.labels'));
      const ignore = await fs.readFile(join(dir, 'sub', '.gitignore'), 'utf8');
      assert.equal(ignore.match(/session\.env/g)?.length, 1, 'entries are not repeated');
      assert.match(ignore, /^\/session\.labels$/m);
      assert.deepEqual(
        (await fs.readdir(join(dir, 'sub'))).sort(),
        ['.gitignore', 'session.env'],
        'no temporary file is left',
      );

      const temp = join(dir, 'tmp.env');
      await writePrivateFile(temp, 'B=1\n', { gitIgnore: false });
      await assert.rejects(fs.stat(join(dir, '.gitignore')));
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('appends to a .gitignore that has no final newline', async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-envfile-'));
    try {
      await fs.writeFile(join(dir, '.gitignore'), 'node_modules');
      await gitIgnoreBeside(join(dir, 'session.env'));
      assert.equal(await fs.readFile(join(dir, '.gitignore'), 'utf8'), 'node_modules\n/session.env\n');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
