/**
 * The real sidecar bundle in a session sidecar, without a cluster: it starts,
 * reports itself not ready (no agent pod can be listed), and waiting for it
 * ends in a TIMEOUT naming its last status; a sidecar that exits fails at once
 * with its own log lines. Nothing is left behind.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ensureRuntimeImage } from '../../../src/docker/runtime-image.js';
import { createSession, readSidecarBundle, removeSession } from '../../../src/docker/session-containers.js';
import { waitSidecarReady } from '../../../src/docker/session-ready.js';
import { newSessionId, SESSION_LABELS, type SessionSpec } from '../../../src/docker/session-spec.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { docker, removeTestContainers, TEST_LABELS } from './helpers.js';

let runtime: string;
let bundle: Buffer;

before(async () => {
  await docker.ping();
  runtime = (await ensureRuntimeImage(docker)).tag;
  bundle = await readSidecarBundle();
});

after(removeTestContainers);

function spec(config: Record<string, unknown>): SessionSpec {
  return {
    session: { id: newSessionId(), workload: `itest-sc-${newSessionId().slice(0, 6)}`, namespace: 'shop' },
    labels: TEST_LABELS,
    sidecar: {
      image: runtime,
      bundle,
      config,
      dnsSearch: ['shop.svc.cluster.local'],
      dnsOptions: ['ndots:5'],
    },
    // docker-init as PID 1 so the idle service stops on SIGTERM.
    service: { image: runtime, cmd: ['node', '-e', 'setInterval(() => {}, 1000)'], init: true },
  };
}

/** Complete, but the API server is a closed port on the sidecar's own loopback. */
const NO_CLUSTER = {
  apiServer: 'https://127.0.0.1:1',
  token: 'not-a-real-token',
  namespace: 'shop',
  agentSelector: 'app=api,devbox.io/agent=true',
  sessionToken: 'session-secret',
  agentTunnelPort: 7070,
  statusPort: 7071,
};

async function leftovers(sessionId: string) {
  return docker.listContainers({ labels: { [SESSION_LABELS.session]: sessionId }, all: true });
}

describe('waitSidecarReady with the real sidecar', () => {
  it('keeps polling a sidecar without a cluster and times out naming its last status', async () => {
    const s = spec(NO_CLUSTER);
    const seen: string[] = [];
    const started = Date.now();
    await assert.rejects(
      createSession(docker, s, {
        beforeService: async (sidecar) => {
          await waitSidecarReady(docker, sidecar.id, {
            timeoutMs: 6000,
            intervalMs: 250,
            onStatus: (status, readiness) => {
              assert.equal(status.namespace, 'shop');
              seen.push(readiness.reason);
            },
          });
        },
      }),
      (err) => {
        assert.ok(isDevboxError(err, 'TIMEOUT'), String(err));
        assert.match(err.message, /not ready within 6s/);
        assert.match(err.message, /no ready agent pod found in namespace shop/);
        assert.match(err.message, /ECONNREFUSED|connect/i, 'the last error of the watches is named');
        process.stderr.write(`# ${err.message}\n`);
        return true;
      },
    );
    const elapsed = Date.now() - started;
    assert.ok(seen.length >= 2, `the status was read repeatedly (${seen.length} times)`);
    assert.ok(elapsed >= 6000 && elapsed < 15_000, `gave up on time (${elapsed} ms)`);
    assert.deepEqual(await leftovers(s.session.id), [], 'the failed session was rolled back');
  });

  it('fails at once with the sidecar’s log lines when it exits', async () => {
    const s = spec({ apiServer: 'https://127.0.0.1:1', statusPort: 7071 });
    const started = Date.now();
    await assert.rejects(
      createSession(docker, s, {
        beforeService: async (sidecar) => {
          await waitSidecarReady(docker, sidecar.id, { timeoutMs: 30_000, intervalMs: 250 });
        },
      }),
      (err) => {
        assert.ok(isDevboxError(err, 'TUNNEL'), String(err));
        assert.match(err.message, /exited with code 2/);
        assert.match(err.message, /sidecar config is incomplete/);
        assert.match(err.message, /missing namespace/);
        return true;
      },
    );
    assert.ok(Date.now() - started < 10_000, 'no waiting for the timeout');
    assert.deepEqual(await leftovers(s.session.id), []);
  });

  it('runs as root, keeps its config root-only, and serves the status document', async () => {
    const s = spec(NO_CLUSTER);
    const session = await createSession(docker, s);
    try {
      const statusCommand = ['node', '/devbox/sidecar.mjs', 'status', '/devbox/config.json'];
      // The status server needs a moment after start.
      let result = await docker.exec(session.sidecar.id, statusCommand);
      for (let i = 0; result.exitCode !== 0 && i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 250));
        result = await docker.exec(session.sidecar.id, statusCommand);
      }
      const status = result.stdout;
      const doc = JSON.parse(status) as { version: number; tunnels: unknown[]; addressMode: string };
      assert.equal(doc.version, 1);
      assert.deepEqual(doc.tunnels, []);
      const config = await docker.exec(session.sidecar.id, [
        'node',
        '-e',
        'const fs=require("fs");const s=fs.statSync("/devbox/config.json");console.log(process.getuid(),(s.mode&0o777).toString(8))',
      ]);
      assert.equal(config.stdout.trim(), '0 600');
    } finally {
      await removeSession(docker, s.session.id, { timeoutSeconds: 5 });
    }
    assert.deepEqual(await leftovers(s.session.id), []);
  });
});
