/**
 * The sidecar's address handling with the real `nft` and `ip` of the runtime
 * image, in a container of its own: with NET_ADMIN cluster addresses are
 * redirected by NAT and the app keeps every port; without NAT they go on `lo`
 * except on the app's ports; without NET_ADMIN the sidecar falls back to 127.x
 * aliases and rewrites DNS answers.
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
  nat?: { backend: string; listenPort: number; targets: number };
  before: string[];
  during: string[];
  after: string[];
  rulesDuring: string;
  rulesAfter: string;
  app: Record<string, string>;
  appReply: Record<string, { reply?: string; error?: string }>;
  api: { reply?: string; error?: string };
  addresses: { ip: string; local?: string; listening: string[]; error?: string }[];
  web: { reply?: string; error?: string };
  webUdp?: string;
  db: { reply?: string; error?: string };
  dns: string[];
  errors: unknown[];
}

let runtime: string;

/** The probe in a container on Docker's default bridge, as the sidecar runs. */
async function probe(
  capAdd: string[],
  args: { nat?: 'auto' | 'off'; appPorts?: number[] },
): Promise<ProbeResult> {
  const result = await runContainer(
    {
      image: runtime,
      user: '0:0',
      capAdd,
      mounts: [{ type: 'bind', source: repo, target: '/repo', readOnly: true }],
      cmd: ['node', '/repo/dist/test/integration/sidecar/netns-probe.js', JSON.stringify(args)],
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
  it('with NET_ADMIN redirects ClusterIPs and headless pod IPs by NAT, leaving the app its own ports', async () => {
    // The app listens on the ports of the Services web (80) and db (5432) once the sidecar is ready.
    const r = await probe(['NET_ADMIN'], { appPorts: [80, 5432] });
    assert.equal(r.mode, 'nat', JSON.stringify(r.errors));
    assert.equal(r.nat?.backend, 'nftables');
    assert.deepEqual(r.app, { 80: 'listening', 5432: 'listening' });
    assert.deepEqual(r.appReply, { 80: { reply: 'app:80' }, 5432: { reply: 'app:5432' } });
    assert.deepEqual(r.during, ['127.0.0.1/8'], 'nothing is bound on lo');
    assert.match(r.rulesDuring, /table ip devbox/);
    assert.deepEqual(r.web, { reply: 'web' });
    assert.equal(r.webUdp, 'echo:udp');
    assert.deepEqual(r.db, { reply: 'db' });
    assert.deepEqual(r.api, { reply: 'api' }, 'the kubernetes Service of the pod env is reachable');
    assert.deepEqual(r.dns, ['10.96.0.20'], 'answers pass unchanged');
    assert.equal(r.rulesAfter, '', 'the rules go on shutdown');
  });

  it('without NAT binds addresses on lo but never a port the app declares, and says which Services it skips', async () => {
    const r = await probe(['NET_ADMIN'], { nat: 'off', appPorts: [80, 5432] });
    assert.equal(r.mode, 'direct', JSON.stringify(r.errors));
    assert.deepEqual(r.app, { 80: 'listening', 5432: 'listening' });
    assert.deepEqual(r.before, ['127.0.0.1/8']);
    assert.deepEqual(r.during, ['10.244.1.5/32', '10.96.0.1/32', '10.96.0.20/32', '127.0.0.1/8']);
    assert.deepEqual(r.after, ['127.0.0.1/8']);
    const web = r.addresses.find((a) => a.ip === '10.96.0.20')!;
    assert.deepEqual(web.listening, ['UDP/5353']);
    assert.match(web.error ?? '', /TCP\/80 not served: the app declares port 80/);
    assert.match(r.addresses.find((a) => a.ip === '10.244.1.5')?.error ?? '', /TCP\/5432 not served/);
    assert.equal(r.webUdp, 'echo:udp');
    assert.deepEqual(r.api, { reply: 'api' });
    assert.equal(r.rulesDuring, '');
  });

  it('without NET_ADMIN falls back to 127.x aliases and rewrites DNS answers to them', async () => {
    const r = await probe([], {});
    assert.equal(r.mode, 'fallback');
    assert.deepEqual(r.during, ['127.0.0.1/8']);
    assert.deepEqual(r.addresses.map((a) => [a.ip, a.local]).sort(), [
      ['10.244.1.5', '127.244.1.5'],
      ['10.96.0.1', '127.96.0.1'],
      ['10.96.0.20', '127.96.0.20'],
    ]);
    assert.deepEqual(r.web, { reply: 'web' });
    assert.deepEqual(r.db, { reply: 'db' });
    assert.deepEqual(r.dns, ['127.96.0.20']);
    assert.match(JSON.stringify(r.errors), /cannot program NAT/);
  });
});
