/**
 * Hostile pods on the workload's labels: anyone allowed to create pods can make one that matches
 * the workload's selector and listens on the agent's tunnel port. One that runs no agent container
 * is never dialed; one that pretends to (its container named like the agent's) is dialed, fails to
 * prove it holds the session token, and hears neither the token nor anything derived from it. The
 * session keeps working through the real agent all along.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AGENT_ENV } from '../../../src/tunnel/agent-contract.js';
import { clusterImages, docker, kubectl } from '../../support/cluster.js';
import { devbox, startWorld, type World } from './fixture.js';

/**
 * An HTTP/2 server on the tunnel port that logs every header and byte it receives, one JSON line
 * each, and answers the session request as an agent of protocol 1 would (200, then a hello).
 */
const LISTENER = `
const http2 = require('node:http2');
const server = http2.createServer();
server.on('stream', (stream, headers) => {
  console.log(JSON.stringify({ headers }));
  stream.on('data', (d) => console.log(JSON.stringify({ data: d.toString('base64') })));
  stream.on('error', () => {});
  stream.respond({ ':status': 200, 'devbox-protocol': process.argv[2] });
  stream.write(JSON.stringify({ type: 'hello', protocol: Number(process.argv[2]), hostname: 'impostor', node: 'v0', intercepts: [] }) + '\\n');
});
server.on('sessionError', () => {});
server.listen(Number(process.argv[1]), '0.0.0.0', () => console.log(JSON.stringify({ listening: true })));
`;

function impostorManifest(ns: string, app: string, name: string, container: string, tunnelPort: number) {
  return `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { app: ${app} } }
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: ${container}
      image: ${clusterImages().runtime}
      imagePullPolicy: Never
      command: ${JSON.stringify(['node', '-e', LISTENER, String(tunnelPort), '2'])}
`;
}

async function eventually<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms (${String(last ?? '')})`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe('impostor pods on the workload labels', { timeout: 300_000 }, () => {
  let world: World;
  let token: string;

  before(async () => {
    world = await startWorld('tnl-impostor', 'tnl-impostor');
    const { ns, app } = world;
    const secret = await kubectl([
      '-n',
      ns,
      'get',
      'secret',
      '-l',
      `devbox.dev/workload=${app}`,
      '-o',
      'jsonpath={.items[0].data.token}',
    ]);
    token = Buffer.from(secret.trim(), 'base64').toString();
    assert.ok(token.length >= 16, 'the session token was read');
    const env = await kubectl([
      '-n',
      ns,
      'get',
      'deploy',
      app,
      '-o',
      `jsonpath={.spec.template.spec.containers[?(@.name=="devbox-agent")].env[?(@.name=="${AGENT_ENV.tunnelPort}")].value}`,
    ]);
    const tunnelPort = Number(env.trim());
    assert.ok(tunnelPort > 0, 'the agent tunnel port was read');
    await kubectl(['apply', '-f', '-'], {
      input:
        impostorManifest(ns, app, 'impostor-plain', 'app', tunnelPort) +
        '---' +
        impostorManifest(ns, app, 'impostor-agent', 'devbox-agent', tunnelPort),
    });
    await kubectl(
      [
        '-n',
        ns,
        'wait',
        '--for=condition=Ready',
        'pod/impostor-plain',
        'pod/impostor-agent',
        '--timeout=120s',
      ],
      { timeoutMs: 130_000 },
    );
  });

  after(async () => {
    await world?.teardown();
  });

  it('the pretending pod is dialed and refused; the plain one is never dialed', async () => {
    let seen: unknown;
    const tunnel = await eventually('a refused tunnel to impostor-agent', 60_000, async () => {
      const status = await world.sidecarStatus();
      seen = status.tunnels;
      const t = status.tunnels.find((x) => x.pod === 'impostor-agent');
      return t?.lastError ? t : undefined;
    }).catch(async (err) => {
      const logs = await docker(['logs', '--tail', '60', world.sidecar]);
      const heard = await kubectl(['-n', world.ns, 'logs', 'impostor-agent']).catch(String);
      throw new Error(
        `${err.message}; tunnels: ${JSON.stringify(seen)}\nsidecar: ${logs.stderr}${logs.stdout}\nimpostor heard: ${heard}`,
      );
    });
    assert.match(tunnel.lastError!, /did not prove it holds the session token/);
    assert.notEqual(tunnel.state, 'up');
    const status = await world.sidecarStatus();
    assert.equal(
      status.tunnels.some((t) => t.pod === 'impostor-plain'),
      false,
      'a pod without the agent is not dialed',
    );
    assert.ok(
      status.tunnels.some((t) => t.pod.startsWith(world.app) && t.state === 'up'),
      'the real agent stays up',
    );
    // devbox status names the refused pod and why.
    const sessions = JSON.parse(await devbox(['status', '-o', 'json'])) as {
      tunnels: { pod: string; state: string; lastError?: string }[];
    }[];
    const listed = sessions.flatMap((x) => x.tunnels).find((t) => t.pod === 'impostor-agent');
    assert.match(
      listed?.lastError ?? '',
      /did not prove it holds the session token/,
      JSON.stringify(sessions),
    );
  });

  it('neither impostor hears the token or a proof', async () => {
    const heard = await kubectl(['-n', world.ns, 'logs', 'impostor-agent']);
    const lines = heard
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { headers?: Record<string, string>; data?: string });
    const requests = lines.filter((l) => l.headers);
    assert.ok(requests.length >= 1, 'the sidecar did open a session with it (the test exercised the proof)');
    assert.ok(
      requests.every((r) => r.headers![':path'] === '/v1/session'),
      `no request but the session request; heard: ${heard.slice(0, 3000)}`,
    );
    assert.equal(lines.filter((l) => l.data).length, 0, 'no byte of body: no proof, no control message');
    assert.ok(!heard.includes(token), 'the token never reached it');
    const plain = await kubectl(['-n', world.ns, 'logs', 'impostor-plain']);
    assert.equal(plain.trim(), JSON.stringify({ listening: true }), 'the plain pod heard nothing at all');
  });

  it('the session keeps working through the real agent', async () => {
    for (let i = 0; i < 5; i++) {
      const out = await world.local(
        "fetch('http://echo/').then((r) => r.json()).then((b) => console.log(b.role))",
        [],
        15_000,
      );
      assert.equal(out.trim(), 'echo');
    }
  });
});
