/**
 * The sidecar's address handling with the real `ip` of the runtime image, in a
 * container of its own (`--network none`): with NET_ADMIN the cluster
 * addresses go on `lo` and come off again on shutdown; without it the sidecar
 * falls back to 127.x aliases and rewrites DNS answers.
 */
import assert from 'node:assert/strict';
import { dirname, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ensureRuntimeImage } from '../../../src/docker/runtime-image.js';
import { docker, removeTestContainers, runContainer } from '../docker/helpers.js';

// dist/test/integration/sidecar → the repository root (its dist/ and node_modules/ are mounted).
const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

interface ProbeResult {
  mode: string;
  before: string[];
  during: string[];
  after: string[];
  addresses: { ip: string; local?: string; listening: string[]; error?: string }[];
  web: { reply?: string; error?: string };
  webUdp?: string;
  db: { reply?: string; error?: string };
  dns: string[];
  errors: unknown[];
}

let runtime: string;

async function probe(capAdd: string[]): Promise<ProbeResult> {
  const result = await runContainer(
    {
      image: runtime,
      user: '0:0',
      networkMode: 'none',
      capAdd,
      mounts: [{ type: 'bind', source: repo, target: '/repo', readOnly: true }],
      cmd: ['node', '/repo/dist/test/integration/sidecar/netns-probe.js'],
    },
    60_000,
  );
  assert.equal(result.exitCode, 0, result.stderr);
  return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as ProbeResult;
}

before(async () => {
  await docker.ping();
  runtime = (await ensureRuntimeImage(docker)).tag;
});

after(removeTestContainers);

describe('sidecar addresses in a container', () => {
  it('with NET_ADMIN puts ClusterIPs and headless pod IPs on lo, serves them, and removes them on shutdown', async () => {
    const r = await probe(['NET_ADMIN']);
    assert.equal(r.mode, 'direct', JSON.stringify(r.errors));
    assert.deepEqual(r.before, ['127.0.0.1/8']);
    assert.deepEqual(r.during, ['10.244.1.5/32', '10.96.0.20/32', '127.0.0.1/8']);
    assert.deepEqual(r.after, ['127.0.0.1/8']);
    assert.deepEqual(r.web, { reply: 'web' });
    assert.equal(r.webUdp, 'echo:udp');
    assert.deepEqual(r.db, { reply: 'db' });
    assert.deepEqual(r.dns, ['10.96.0.20'], 'answers pass unchanged');
  });

  it('without NET_ADMIN falls back to 127.x aliases and rewrites DNS answers to them', async () => {
    const r = await probe([]);
    assert.equal(r.mode, 'fallback');
    assert.deepEqual(r.during, ['127.0.0.1/8']);
    assert.deepEqual(r.addresses.map((a) => [a.ip, a.local]).sort(), [
      ['10.244.1.5', '127.244.1.5'],
      ['10.96.0.20', '127.96.0.20'],
    ]);
    assert.deepEqual(r.web, { reply: 'web' });
    assert.deepEqual(r.db, { reply: 'db' });
    assert.deepEqual(r.dns, ['127.96.0.20']);
  });
});
