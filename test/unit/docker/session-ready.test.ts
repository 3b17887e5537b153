import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { ContainerInfo, DockerClient, ExecResult } from '../../../src/docker/client.js';
import { type SidecarStatus, sidecarReadiness, waitSidecarReady } from '../../../src/docker/session-ready.js';
import { isDevboxError } from '../../../src/util/errors.js';

function status(overrides: Partial<SidecarStatus> = {}): SidecarStatus {
  return {
    version: 1,
    namespace: 'shop',
    startedAt: '2026-01-01T00:00:00Z',
    uptimeSeconds: 3,
    rssBytes: 1,
    addressMode: 'direct',
    tunnels: [{ pod: 'api-1', podIP: '10.0.0.5', state: 'up', since: '', reconnects: 0, streamsOpen: 0 }],
    outbound: {} as SidecarStatus['outbound'],
    inbound: {} as SidecarStatus['inbound'],
    streamsOpen: 0,
    dns: {} as SidecarStatus['dns'],
    addresses: [{ ip: '10.96.0.20', owners: ['svc/inventory'], ports: ['80/tcp'], listening: ['80/tcp'] }],
    watches: {
      pods: { lists: 1, watches: 1, events: 0, errors: 0, synced: true },
      services: { lists: 1, watches: 1, events: 0, errors: 0, synced: true },
      endpointSlices: { lists: 1, watches: 1, events: 0, errors: 0, synced: true },
    },
    otherNamespaces: {},
    lastErrors: [],
    ...overrides,
  };
}

describe('sidecarReadiness', () => {
  it('ready with a tunnel up, watches listed and every address listening', () => {
    assert.deepEqual(sidecarReadiness(status()), { ready: true, reason: 'ready' });
  });

  it('not ready without an agent pod, naming the last error', () => {
    const r = sidecarReadiness(
      status({
        tunnels: [],
        lastErrors: [{ at: '', what: 'watch', error: 'connect ECONNREFUSED 10.0.0.1:6443' }],
      }),
    );
    assert.equal(r.ready, false);
    assert.equal(
      r.reason,
      'no ready agent pod found in namespace shop; last error: watch: connect ECONNREFUSED 10.0.0.1:6443',
    );
  });

  it('not ready while tunnels connect or back off, naming each', () => {
    const r = sidecarReadiness(
      status({
        tunnels: [
          {
            pod: 'api-1',
            podIP: '',
            state: 'backoff',
            since: '',
            reconnects: 2,
            streamsOpen: 0,
            lastError: 'forbidden',
          },
          { pod: 'api-2', podIP: '', state: 'connecting', since: '', reconnects: 0, streamsOpen: 0 },
        ],
      }),
    );
    assert.equal(r.reason, 'no tunnel up yet: api-1 backoff (forbidden), api-2 connecting');
  });

  it('not ready before Services and EndpointSlices are listed, nor while listeners open', () => {
    const base = status();
    const unsynced = sidecarReadiness(
      status({
        watches: { ...base.watches, endpointSlices: { ...base.watches.endpointSlices!, synced: false } },
      }),
    );
    assert.equal(unsynced.reason, 'still listing endpointSlices');
    const opening = sidecarReadiness(
      status({
        addresses: [{ ip: '10.96.0.21', owners: [], ports: ['80/tcp', '53/udp'], listening: ['80/tcp'] }],
      }),
    );
    assert.equal(opening.reason, 'still opening listeners on 10.96.0.21');
    const failed = sidecarReadiness(
      status({
        addresses: [{ ip: '10.96.0.21', owners: [], ports: ['80/tcp'], listening: [], error: 'EPERM' }],
      }),
    );
    assert.equal(failed.ready, true, 'a failed address is reported by status, not waited for');
  });
});

/** An engine whose sidecar answers the given exec results in turn, then keeps the last. */
function engine(results: (ExecResult | Error)[], options: { exitAfter?: number; logs?: string } = {}) {
  let polls = 0;
  let inspections = 0;
  const client = {
    async inspectContainer(): Promise<ContainerInfo> {
      inspections++;
      const running = options.exitAfter === undefined || inspections <= options.exitAfter;
      return {
        id: 'sc',
        name: 'devbox-api-sidecar',
        image: 'rt',
        imageId: 'sha256:1',
        labels: {},
        running,
        status: running ? 'running' : 'exited',
        exitCode: running ? 0 : 2,
        tty: false,
        networkMode: 'bridge',
      };
    },
    async exec(): Promise<ExecResult> {
      const result = results[Math.min(polls++, results.length - 1)];
      if (result instanceof Error) throw result;
      return result as ExecResult;
    },
    async logs() {
      return { stdout: Readable.from([Buffer.from(options.logs ?? '')]), stderr: Readable.from([]) };
    },
  };
  return { client: client as unknown as DockerClient, polls: () => polls };
}

const ok = (doc: SidecarStatus): ExecResult => ({ exitCode: 0, stdout: JSON.stringify(doc), stderr: '' });

describe('waitSidecarReady', () => {
  it('polls until ready and returns that status', async () => {
    const e = engine([
      { exitCode: 1, stdout: '', stderr: 'fetch failed' },
      ok(status({ tunnels: [] })),
      ok(status()),
    ]);
    const reasons: string[] = [];
    const result = await waitSidecarReady(e.client, 'sc', {
      timeoutMs: 5000,
      intervalMs: 1,
      onStatus: (_s, r) => reasons.push(r.reason),
    });
    assert.equal(result.namespace, 'shop');
    assert.equal(e.polls(), 3);
    assert.deepEqual(reasons, ['no ready agent pod found in namespace shop', 'ready']);
  });

  it('times out naming the last status', async () => {
    const e = engine([ok(status({ tunnels: [] }))]);
    await assert.rejects(waitSidecarReady(e.client, 'sc', { timeoutMs: 60, intervalMs: 10 }), (err) => {
      assert.ok(isDevboxError(err, 'TIMEOUT'));
      assert.match(err.message, /not ready within 0.1s: no ready agent pod found in namespace shop/);
      assert.match(err.hint ?? '', /docker logs/);
      return true;
    });
    assert.ok(e.polls() >= 2);
  });

  it('times out naming a status command that keeps failing', async () => {
    const e = engine([{ exitCode: 1, stdout: '', stderr: 'line 1\n{"msg":"fatal: fetch failed"}\n' }]);
    await assert.rejects(
      waitSidecarReady(e.client, 'sc', { timeoutMs: 30, intervalMs: 10 }),
      /the status command failed \(exit 1\): \{"msg":"fatal: fetch failed"\}/,
    );
  });

  it('fails at once with the last log lines when the sidecar exits', async () => {
    const e = engine([ok(status({ tunnels: [] }))], {
      exitAfter: 2,
      logs: 'starting\nsidecar config is incomplete\n',
    });
    await assert.rejects(waitSidecarReady(e.client, 'sc', { timeoutMs: 10_000, intervalMs: 1 }), (err) => {
      assert.ok(isDevboxError(err, 'TUNNEL'));
      assert.match(
        err.message,
        /devbox-api-sidecar exited with code 2:\nstarting\nsidecar config is incomplete$/,
      );
      return true;
    });
    assert.equal(e.polls(), 2);
  });

  it('stops when the signal aborts', async () => {
    const e = engine([ok(status({ tunnels: [] }))]);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('ctrl-c')), 30);
    await assert.rejects(
      waitSidecarReady(e.client, 'sc', { timeoutMs: 10_000, intervalMs: 5, signal: controller.signal }),
      /ctrl-c/,
    );
  });

  it('a status that is not JSON is reported as such', async () => {
    const e = engine([{ exitCode: 0, stdout: 'Bad Gateway', stderr: '' }]);
    await assert.rejects(
      waitSidecarReady(e.client, 'sc', { timeoutMs: 20, intervalMs: 5 }),
      /status is not JSON: Bad Gateway/,
    );
  });
});
