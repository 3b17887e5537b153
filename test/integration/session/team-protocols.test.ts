/**
 * What filtered sessions see beyond plain requests, on the real cluster: HTTP/2 cleartext routed
 * stream by stream with trailers, a WebSocket upgrade routed on its request and piped after, a
 * 256 MB response streamed through a personal session with the agent's memory bounded, and a
 * mirror whose local app takes 10 s per request without slowing the callers down.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { SessionStatus } from '../../../src/session/status.js';
import type { UpResult } from '../../../src/session/up.js';
import { clusterImages, kubectl, testNamespace } from '../../support/cluster.js';
import { devbox as devboxAs, type RunAs } from '../../support/devbox.js';
import { developerIn } from '../../support/developer.js';

const images = clusterImages();
const user: RunAs = {};
const devbox = (args: string[]) => devboxAs(args, user);

/** The app: HTTP/1.1 (with a WebSocket upgrade and a streamed /big/<bytes>) on 8080, h2c on 8081; it answers with $WHO. */
const SERVER = `
const http = require('node:http'), http2 = require('node:http2'), crypto = require('node:crypto');
const who = process.env.WHO, slow = Number(process.env.SLOW_MS || 0);
const h1 = http.createServer((req, res) => {
  res.setHeader('x-who', who);
  if (req.url.startsWith('/big/')) {
    const total = Number(req.url.slice(5)), chunk = Buffer.alloc(1 << 20, 97);
    let sent = 0;
    const pump = () => { while (sent < total) { sent += chunk.length; if (!res.write(chunk)) return res.once('drain', pump); } res.end(); };
    return pump();
  }
  setTimeout(() => res.end(JSON.stringify({ where: who })), slow);
});
h1.on('upgrade', (req, socket) => {
  const accept = crypto.createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write('HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + '\\r\\n\\r\\n');
  socket.on('data', (d) => socket.write(who + ':' + d));
});
h1.listen(8080);
const h2 = http2.createServer();
h2.on('stream', (stream) => {
  stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
  stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'x-who': who }));
  stream.end(who);
});
h2.listen(8081);
process.on('SIGTERM', () => process.exit(0));`;

function manifests(namespace: string): string {
  const app = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'echo', namespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'echo' } },
      template: {
        metadata: { labels: { app: 'echo' } },
        spec: {
          containers: [
            {
              name: 'echo',
              image: images.runtime,
              imagePullPolicy: 'IfNotPresent',
              command: ['node', '-e', SERVER],
              env: [{ name: 'WHO', value: 'pod' }],
              ports: [
                { name: 'http', containerPort: 8080 },
                { name: 'h2', containerPort: 8081 },
              ],
              readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 },
            },
          ],
        },
      },
    },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'echo', namespace },
    spec: {
      selector: { app: 'echo' },
      ports: [
        { name: 'http', port: 80, targetPort: 'http' },
        { name: 'h2', port: 81, targetPort: 'h2' },
      ],
    },
  };
  const client = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'client', namespace },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'client' } },
      template: {
        metadata: { labels: { app: 'client' } },
        spec: {
          containers: [
            {
              name: 'client',
              image: images.runtime,
              imagePullPolicy: 'IfNotPresent',
              command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'],
            },
          ],
        },
      },
    },
  };
  return [app, service, client].map((m) => JSON.stringify(m)).join('\n');
}

/** Runs `script` with node in the client pod; returns the JSON it prints last. */
async function inCluster<T>(namespace: string, script: string, ...args: string[]): Promise<T> {
  const out = await kubectl(['-n', namespace, 'exec', 'deploy/client', '--', 'node', '-e', script, ...args]);
  return JSON.parse(out.trim().split('\n').at(-1)!) as T;
}

const H2_STREAMS = `
const http2 = require('node:http2');
const keys = JSON.parse(process.argv[1]);
const session = http2.connect('http://echo:81');
const one = (key) => new Promise((resolve, reject) => {
  const stream = session.request({ ':path': '/svc/Method', 'content-type': 'application/grpc', te: 'trailers', ...(key ? { 'x-devbox-session': key } : {}) });
  let body = '', trailers = {};
  stream.on('data', (d) => (body += d));
  stream.on('trailers', (t) => (trailers = t));
  stream.on('end', () => resolve({ body, trailer: trailers['x-who'] }));
  stream.on('error', reject);
  stream.end();
});
Promise.all(keys.map(one)).then((answers) => { console.log(JSON.stringify(answers)); session.close(); }, (e) => { console.error(e); process.exit(1); });`;

const WEBSOCKET = `
const http = require('node:http');
const key = process.argv[1];
const req = http.request({ host: 'echo', port: 80, path: '/ws', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...(key ? { 'x-devbox-session': key } : {}) } });
req.on('upgrade', (res, socket) => {
  socket.once('data', (d) => { console.log(JSON.stringify({ status: res.statusCode, echoed: String(d) })); socket.destroy(); });
  socket.write('hello');
});
req.on('response', (res) => { console.log(JSON.stringify({ status: res.statusCode })); });
req.end();`;

const BIG = `
const http = require('node:http');
const [key, bytes] = process.argv.slice(1);
const started = Date.now();
http.get({ host: 'echo', port: 80, path: '/big/' + bytes, headers: { 'x-devbox-session': key } }, (res) => {
  let received = 0;
  res.on('data', (d) => (received += d.length));
  res.on('end', () => console.log(JSON.stringify({ who: res.headers['x-who'], received, ms: Date.now() - started })));
}).on('error', (e) => { console.error(e); process.exit(1); });`;

const LATENCY = `
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true });
const times = [];
const one = () => new Promise((resolve, reject) => {
  const t = process.hrtime.bigint();
  http.get({ host: 'echo', port: 80, path: '/', agent }, (res) => { res.resume(); res.on('end', () => { times.push(Number(process.hrtime.bigint() - t) / 1e6); resolve(); }); }).on('error', reject);
});
(async () => { for (let i = 0; i < Number(process.argv[1]); i++) await one(); times.sort((a, b) => a - b); console.log(JSON.stringify({ p50: times[times.length >> 1], max: times.at(-1) })); agent.destroy(); })();`;

describe('filtered sessions over HTTP/2, WebSocket, a long response and a mirror', {
  timeout: 900_000,
}, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let alice: UpResult;

  before(async () => {
    ns = await testNamespace('proto');
    await kubectl(['-n', ns.name, 'apply', '-f', '-'], { input: manifests(ns.name) });
    await kubectl(['-n', ns.name, 'rollout', 'status', 'deploy/echo', 'deploy/client', '--timeout=180s']);
    user.kubeconfig = (await developerIn(ns.name)).kubeconfig;
    const up = await devbox([
      'up',
      'echo',
      '-n',
      ns.name,
      '--detach',
      '-o',
      'json',
      '--name',
      'alice',
      '--personal',
      '-e',
      'WHO=alice',
    ]);
    assert.equal(up.code, 0, up.stderr);
    alice = JSON.parse(up.stdout) as UpResult;
  });

  after(async () => {
    await devbox(['clean', '-n', ns.name, '--force']);
    await ns?.remove();
  });

  it('routes HTTP/2 cleartext stream by stream on one connection, trailers included', async () => {
    const key = alice.personalKey!;
    const answers = await inCluster<{ body: string; trailer: string }[]>(
      ns.name,
      H2_STREAMS,
      JSON.stringify([key, '', key, '']),
    );
    assert.deepEqual(answers, [
      { body: 'alice', trailer: 'alice' },
      { body: 'pod', trailer: 'pod' },
      { body: 'alice', trailer: 'alice' },
      { body: 'pod', trailer: 'pod' },
    ]);
  });

  it('decides a WebSocket upgrade on its request, then pipes its bytes', async () => {
    assert.deepEqual(await inCluster(ns.name, WEBSOCKET, alice.personalKey!), {
      status: 101,
      echoed: 'alice:hello',
    });
    assert.deepEqual(await inCluster(ns.name, WEBSOCKET, ''), { status: 101, echoed: 'pod:hello' });
  });

  it('streams a 256 MB response through a personal session without the agent holding it', async () => {
    const bytes = 256 * 1024 * 1024;
    const got = await inCluster<{ who: string; received: number; ms: number }>(
      ns.name,
      BIG,
      alice.personalKey!,
      String(bytes),
    );
    assert.equal(got.who, 'alice');
    assert.equal(got.received, bytes);
    const pod = (
      await kubectl([
        '-n',
        ns.name,
        'get',
        'pods',
        '-l',
        'app=echo',
        '-o',
        'jsonpath={.items[0].metadata.name}',
      ])
    ).trim();
    const status = await kubectl([
      '-n',
      ns.name,
      'exec',
      pod,
      '-c',
      'devbox-agent',
      '--',
      'node',
      '-e',
      "process.stdout.write(require('fs').readFileSync('/proc/1/status', 'utf8'))",
    ]);
    const peakKb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1]);
    assert.ok(peakKb > 0 && peakKb < 160 * 1024, `the agent's peak RSS ${peakKb} kB`);
    process.stdout.write(
      `# 256 MB through a personal session: ${got.ms} ms, agent peak RSS ${Math.round(peakKb / 1024)} MB\n`,
    );
  });

  it('copies requests to a mirror whose app takes 10 s each, without slowing the callers', async () => {
    const before = await inCluster<{ p50: number; max: number }>(ns.name, LATENCY, '40');
    const up = await devbox([
      'up',
      'echo',
      '-n',
      ns.name,
      '--detach',
      '-o',
      'json',
      '--name',
      'bob',
      '--mirror',
      '-e',
      'WHO=bob',
      '-e',
      'SLOW_MS=10000',
    ]);
    assert.equal(up.code, 0, up.stderr);
    const bob = JSON.parse(up.stdout) as UpResult;
    assert.equal(bob.resumed, true, 'the mirror joins the agent in place');
    const during = await inCluster<{ p50: number; max: number }>(ns.name, LATENCY, '40');
    process.stdout.write(
      `# caller latency without / with a 10 s mirror: p50 ${before.p50.toFixed(2)} / ${during.p50.toFixed(2)} ms, max ${before.max.toFixed(1)} / ${during.max.toFixed(1)} ms\n`,
    );
    assert.ok(during.p50 < before.p50 * 1.5 + 5, `p50 ${before.p50} → ${during.p50} ms`);
    assert.ok(during.max < 1_000, `no caller waited for the mirror: max ${during.max} ms`);
    const { answers } = {
      answers: await inCluster<{ where: string }>(
        ns.name,
        "require('node:http').get('http://echo/', (r) => { let b=''; r.on('data', (d) => (b += d)); r.on('end', () => console.log(b)); })",
      ),
    };
    assert.equal(answers.where, 'pod', 'callers are answered by the pod');

    const text = (await devbox(['status', '-o', 'json'])).stdout;
    const mine = (JSON.parse(text) as SessionStatus[]).find(
      (s) => s.namespace === ns.name && s.name === 'bob',
    );
    const copies = mine?.sessions?.find((s) => s.name === 'bob')?.requests;
    assert.ok(copies && copies.mirrored + copies.dropped >= 40, text);
    assert.equal((await devbox(['down', 'echo', '-n', ns.name, '--name', 'bob'])).code, 0);
  });
});
