import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { supervise } from '../../../src/sidecar/supervisor.js';
import { eventually } from './fakes.js';

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

/** A daemon that appends "start" to `log`, crashes (70) on its first `crashes` runs, then serves until SIGTERM. */
const DAEMON = `
const fs = require('node:fs');
const [log, crashes] = [process.argv[1], Number(process.argv[2])];
fs.appendFileSync(log, 'start\\n');
const runs = fs.readFileSync(log, 'utf8').split('\\n').filter(Boolean).length;
if (runs <= crashes) process.exit(70);
process.on('SIGTERM', () => { fs.appendFileSync(log, 'stopped\\n'); process.exit(0); });
setInterval(() => {}, 1 << 30);
`;

describe('sidecar supervisor', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'devbox-supervise-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const run = (name: string, crashes: number) => {
    const log = join(dir, name);
    const daemon = supervise({
      command: process.execPath,
      args: ['-e', DAEMON, log, String(crashes)],
      env: { PATH: process.env.PATH },
      log: quiet,
      firstDelayMs: 20,
    });
    const lines = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    return { daemon, lines };
  };

  it('starts a crashed daemon again, then passes SIGTERM on and ends with its exit code', async () => {
    const { daemon, lines } = run('crashing', 2);
    await eventually(async () => (await lines()).length === 3, 5_000, 'third start');
    assert.equal(daemon.restarts, 2);
    daemon.stop('SIGTERM');
    assert.equal(await daemon.done, 0);
    assert.deepEqual(await lines(), ['start', 'start', 'start', 'stopped']);
  });

  it('does not start again a daemon that refused its configuration', async () => {
    const daemon = supervise({
      command: process.execPath,
      args: ['-e', 'process.exit(2)'],
      env: { PATH: process.env.PATH },
      log: quiet,
      firstDelayMs: 20,
    });
    assert.equal(await daemon.done, 2);
    assert.equal(daemon.restarts, 0);
  });
});
