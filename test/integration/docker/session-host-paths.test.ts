/**
 * devbox inside a container that has the engine's socket (Codespaces-style):
 * `-v` sources are translated through that container's own mounts to the
 * engine's paths, and a path only the container has is refused.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ensureRuntimeImage } from '../../../src/docker/runtime-image.js';
import { docker, runContainer, TEST_LABELS } from './helpers.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../../', import.meta.url));
const socket = docker.endpoint.host.replace(/^unix:\/\//, '');
const volume = `devbox-itest-paths-${process.pid}`;
let runtime: string;
let workspace: string;

before(async () => {
  await docker.ping();
  assert.ok(
    docker.endpoint.host.startsWith('unix://'),
    'this test mounts the engine socket into a container',
  );
  runtime = (await ensureRuntimeImage(docker)).tag;
  workspace = await mkdtemp(join(tmpdir(), 'devbox-paths-'));
  await mkdir(join(workspace, 'src', 'app'), { recursive: true });
  await writeFile(join(workspace, 'src', 'app', 'main.js'), '\n');
  await docker.createVolume(volume, { labels: TEST_LABELS });
});

after(async () => {
  await docker.removeVolume(volume, { force: true });
  if (workspace) await rm(workspace, { recursive: true, force: true });
});

/** Runs in the dev container: resolves mounts with the compiled devbox and prints the outcome. */
const INSIDE = `
const fs = await import('node:fs');
const { createDockerClient, resolveBindMounts } = await import('/devbox/dist/src/docker/index.js');
const docker = createDockerClient();
fs.mkdirSync('/cache/deps', { recursive: true });
const out = {};
out.ok = await resolveBindMounts(docker, [
  { source: 'src/app', target: '/app' },
  { source: '/cache/deps', target: '/deps', readOnly: true },
], { cwd: '/workspaces/project' });
try {
  await resolveBindMounts(docker, [{ source: '/etc', target: '/host-etc' }, { source: '/nowhere', target: '/x' }]);
} catch (e) {
  out.error = { code: e.code, message: e.message, hint: e.hint };
}
console.log(JSON.stringify(out));
`;

describe('resolveBindMounts inside a container with the engine socket', () => {
  it('maps sources through the container’s binds and volumes, and refuses paths only it has', async () => {
    const result = await runContainer({
      image: runtime,
      user: '0',
      cmd: ['node', '--input-type=module', '-e', INSIDE],
      mounts: [
        { type: 'bind', source: socket, target: '/var/run/docker.sock' },
        { type: 'bind', source: repo, target: '/devbox', readOnly: true },
        { type: 'bind', source: workspace, target: '/workspaces/project' },
        { type: 'volume', source: volume, target: '/cache' },
      ],
    });
    assert.equal(result.exitCode, 0, result.stderr);
    const out = JSON.parse(result.stdout) as {
      ok: { mode: string; mounts: { source: string; target: string; readOnly?: boolean }[]; notes: string[] };
      error: { code: string; message: string; hint: string };
    };
    assert.equal(out.ok.mode, 'container');
    const volumePath = (await volumeMountpoint()).replace(/\/$/, '');
    assert.deepEqual(out.ok.mounts, [
      { source: join(workspace, 'src', 'app'), target: '/app' },
      { source: `${volumePath}/deps`, target: '/deps', readOnly: true },
    ]);
    assert.match(out.ok.notes.join('\n'), new RegExp(`/cache/deps lives in the Docker volume ${volume}`));
    assert.equal(out.error.code, 'BAD_INPUT');
    assert.match(out.error.message, /\/etc is inside devbox's own container/);
    assert.match(out.error.message, /\/nowhere does not exist/);
    assert.match(out.error.hint, /\/workspaces\/project/);
  });
});

/** Where the engine keeps the volume's files (what a bind of it must name), as the docker CLI reports it. */
async function volumeMountpoint(): Promise<string> {
  const { stdout } = await run('docker', ['volume', 'inspect', volume, '--format', '{{.Mountpoint}}']);
  return stdout.trim();
}
