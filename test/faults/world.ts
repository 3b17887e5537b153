/**
 * A fault test's world: the tunnel tests' namespace (an HTTP app that says where it runs, an echo
 * Service, …), a developer holding only the devbox Role, a snapshot of the namespace before any
 * session, and a prober pod that asks the app's Service every 100 ms for the whole test and logs
 * one JSON line per request. The prober's log is read through the kubelet afterwards, so it keeps
 * its record while the API server is away and needs no stream open from the host.
 */

import type { SessionStatus } from '../../src/session/status.js';
import { ECHO_PORT, worldManifests } from '../integration/tunnel/fixture.js';
import { clusterImages, kubectl, testNamespace } from '../support/cluster.js';
import { clusterSnapshot, devbox, type RunResult } from '../support/devbox.js';
import { developerIn } from '../support/developer.js';

/** One request of the prober: when it began and ended (epoch ms, the host's clock) and who answered. */
export interface ProbeResult {
  t: number;
  done: number;
  where?: string;
  error?: string;
}

const PROBE_EVERY_MS = 100;

/** Arguments: url, interval ms. One request per interval, each on a new connection, 1 s timeout. */
const PROBER = `
const http = require('node:http');
const [url, every] = [process.argv[1], Number(process.argv[2])];
setInterval(() => {
  const t = Date.now();
  const report = (fields) => console.log(JSON.stringify({ t, done: Date.now(), ...fields }));
  const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => { try { report({ where: JSON.parse(body).where }); } catch { report({ error: 'bad body' }); } });
    res.on('error', (e) => report({ error: e.code || e.message }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => report({ error: e.code || e.message }));
}, every);
`;

export interface FaultWorld {
  ns: string;
  app: string;
  /** The developer's kubeconfig (only the devbox Role in `ns`). */
  kubeconfig: string;
  /** The namespace's objects before any session (see clusterSnapshot). */
  before: Record<string, unknown>;
  /** Runs `devbox args… -n ns` as the developer. */
  devbox(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** This namespace's entry of `devbox status -o json` (which lists the sessions of the whole engine). */
  status(): Promise<SessionStatus | undefined>;
  /** `devbox up app --detach`, failing with its output when it fails; the local containers' names. */
  up(): Promise<{ service: string; sidecar: string }>;
  /** The prober's requests that began at or after `since` (epoch ms). */
  probes(since: number): Promise<ProbeResult[]>;
  /**
   * Waits until a request that began at or after `since` is answered by `where` ('local' or
   * 'pod'), and returns the first such request; fails after `timeoutMs` with what was answered.
   */
  firstAnswer(where: string, since: number, timeoutMs: number): Promise<ProbeResult>;
  /** `devbox clean --force`, then the namespace goes. */
  remove(): Promise<void>;
}

export async function faultWorld(prefix: string): Promise<FaultWorld> {
  const namespace = await testNamespace(prefix);
  const ns = namespace.name;
  const app = 'app';
  let kubeconfig = '';
  const run = (args: string[], timeoutMs = 240_000) => devbox([...args, '-n', ns], { kubeconfig, timeoutMs });
  const remove = async () => {
    if (kubeconfig) await run(['clean', '--force']);
    await namespace.remove();
  };
  try {
    // The controller manager makes each namespace's `default` ServiceAccount; pods are refused
    // until it exists, and after an API server restart its informers take a while to catch up.
    const accountAt = Date.now();
    while (
      !(await kubectl(['-n', ns, 'get', 'serviceaccount', 'default']).then(
        () => true,
        () => false,
      ))
    ) {
      if (Date.now() - accountAt > 90_000)
        throw new Error(
          `namespace ${ns} got no default ServiceAccount within 90 s: is the controller manager running?`,
        );
      await new Promise((r) => setTimeout(r, 250));
    }
    const image = clusterImages().runtime;
    await kubectl(['apply', '-f', '-'], {
      input: `${worldManifests(ns, app)}
---
apiVersion: v1
kind: Pod
metadata: { name: prober, namespace: ${ns} }
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: prober
      image: ${image}
      imagePullPolicy: Never
      command: ${JSON.stringify(['node', '-e', PROBER, `http://${app}/`, String(PROBE_EVERY_MS)])}
`,
    });
    const rolledOut = (what: string) =>
      kubectl(['-n', ns, 'rollout', 'status', what, '--timeout=180s'], { timeoutMs: 200_000 });
    await Promise.all([
      rolledOut(`deploy/${app}`),
      rolledOut('deploy/echo'),
      rolledOut('sts/db'),
      kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/prober', '--timeout=180s'], {
        timeoutMs: 200_000,
      }),
    ]);
    kubeconfig = (await developerIn(ns)).kubeconfig;
  } catch (err) {
    await remove().catch(() => undefined);
    throw err;
  }
  const before = await clusterSnapshot(ns);

  const probes = async (since: number): Promise<ProbeResult[]> => {
    // A second of slack: the kubelet's timestamps and the prober's own are taken apart.
    const sinceTime = new Date(since - 1_000).toISOString();
    const text = await kubectl(['-n', ns, 'logs', 'prober', `--since-time=${sinceTime}`], {
      timeoutMs: 15_000,
    });
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as ProbeResult)
      .filter((r) => r.t >= since);
  };

  return {
    ns,
    app,
    kubeconfig,
    before,
    devbox: run,
    async status() {
      const result = await devbox(['status', '-o', 'json'], { kubeconfig, timeoutMs: 60_000 });
      if (result.code !== 0) throw new Error(`devbox status exited ${result.code}:\n${result.stderr}`);
      return (JSON.parse(result.stdout) as SessionStatus[]).find((s) => s.namespace === ns);
    },
    async up() {
      const result = await run(['up', app, '--detach', '-o', 'json']);
      if (result.code !== 0)
        throw new Error(`devbox up exited ${result.code}:\n${result.stderr}${result.stdout}`);
      const { containers } = JSON.parse(result.stdout) as {
        containers: { service: string; sidecar: string };
      };
      return { service: containers.service, sidecar: containers.sidecar };
    },
    probes,
    async firstAnswer(where, since, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let seen: ProbeResult[] | string = [];
      while (Date.now() < deadline) {
        // While the API server is away the log cannot be read: that only means asking again.
        seen = await probes(since).catch((err: Error) => err.message);
        const hit = typeof seen === 'string' ? undefined : seen.find((r) => r.where === where);
        if (hit) return hit;
        await new Promise((r) => setTimeout(r, 500));
      }
      throw new Error(
        `no request begun after ${new Date(since).toISOString()} was answered by the ${where} within ${timeoutMs} ms; ` +
          `answers: ${typeof seen === 'string' ? seen : describeAnswers(seen)}`,
      );
    },
    remove,
  };
}

/** How many requests each answerer (or error) took, in order of first appearance: `local×12, ECONNREFUSED×3`. */
export function describeAnswers(results: ProbeResult[]): string {
  const counts = new Map<string, number>();
  for (const r of results) {
    const key = r.where ?? r.error ?? '?';
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return counts.size ? [...counts].map(([k, n]) => `${k}×${n}`).join(', ') : 'none';
}

/** Script for `node -e` in the local container: one TCP echo through the cluster's echo Service. */
export const OUTBOUND_ECHO = `
const net = require('node:net');
const socket = net.connect({ host: 'echo', port: ${ECHO_PORT}, timeout: 2000 });
let echoed = '';
socket.on('connect', () => socket.end('ping'));
socket.on('data', (d) => (echoed += d));
socket.on('timeout', () => socket.destroy(new Error('timeout')));
socket.on('error', (e) => { console.error(e.code || e.message); process.exit(1); });
socket.on('close', () => process.exit(echoed === 'ping' ? 0 : 1));
`;
