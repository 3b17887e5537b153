/**
 * The local cluster behaves like a real one, and Docker's containers stand
 * outside it as a laptop does: every later test of devbox relies on both.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  clusterDir,
  clusterImages,
  docker,
  kubectl,
  portForward,
  testNamespace,
} from '../../support/cluster.js';

const images = clusterImages();

function manifests(ns: string): string {
  const image = images.busybox;
  return `
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: ${ns} }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        - name: web
          image: ${image}
          imagePullPolicy: Never
          command: [sh, -c, 'mkdir -p /www && echo "hello from $HOSTNAME" > /www/index.html && exec httpd -f -p 8080 -h /www']
          ports: [{ name: http, containerPort: 8080 }]
          readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: ${ns} }
spec:
  selector: { app: web }
  ports: [{ name: http, port: 80, targetPort: http }]
---
apiVersion: v1
kind: Service
metadata: { name: web-nodeport, namespace: ${ns} }
spec:
  type: NodePort
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: ${ns} }
spec:
  clusterIP: None
  selector: { app: db }
  ports: [{ name: tcp, port: 5432 }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db, namespace: ${ns} }
spec:
  serviceName: db
  replicas: 1
  selector: { matchLabels: { app: db } }
  template:
    metadata: { labels: { app: db } }
    spec:
      containers:
        - name: db
          image: ${image}
          imagePullPolicy: Never
          command: [nc, -ll, -p, '5432', -e, echo, db]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: ${ns} }
spec:
  containers:
    - name: client
      image: ${image}
      imagePullPolicy: Never
      command: [sleep, '3600']
`;
}

describe('local cluster', { timeout: 300_000 }, () => {
  let ns: Awaited<ReturnType<typeof testNamespace>>;
  let webIP: string;
  let webPodIP: string;
  let nodePort: number;

  before(async () => {
    ns = await testNamespace('conformance');
    await kubectl(['apply', '-f', '-'], { input: manifests(ns.name) });
    await kubectl(['-n', ns.name, 'rollout', 'status', 'deploy/web', '--timeout=180s']);
    await kubectl(['-n', ns.name, 'rollout', 'status', 'sts/db', '--timeout=180s']);
    await kubectl(['-n', ns.name, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=180s']);
    webIP = (await kubectl(['-n', ns.name, 'get', 'svc', 'web', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
    nodePort = Number(
      await kubectl([
        '-n',
        ns.name,
        'get',
        'svc',
        'web-nodeport',
        '-o',
        'jsonpath={.spec.ports[0].nodePort}',
      ]),
    );
    webPodIP = (
      await kubectl([
        '-n',
        ns.name,
        'get',
        'pods',
        '-l',
        'app=web',
        '-o',
        'jsonpath={.items[0].status.podIP}',
      ])
    ).trim();
  });

  after(async () => {
    await ns?.remove();
  });

  const inClient = (...cmd: string[]) => kubectl(['-n', ns.name, 'exec', 'client', '--', ...cmd]);
  // The pod's own resolver (search list, ndots) picks the address wget connects to.
  const resolve = async (name: string, port: number) => {
    const out = await inClient('sh', '-c', `timeout 5 wget -O /dev/null http://${name}:${port}/ 2>&1; true`);
    return /^Connecting to \S+ \(([0-9.]+):\d+\)/m.exec(out)?.[1] ?? out;
  };

  it('has a Ready node', async () => {
    const ready = await kubectl([
      'get',
      'nodes',
      '-o',
      'jsonpath={.items[*].status.conditions[?(@.type=="Ready")].status}',
    ]);
    assert.equal(ready.trim(), 'True');
  });

  it('makes a 2-replica Deployment from a loaded image Available', async () => {
    const available = await kubectl([
      '-n',
      ns.name,
      'get',
      'deploy',
      'web',
      '-o',
      'jsonpath={.status.availableReplicas}',
    ]);
    assert.equal(available, '2');
  });

  it('reaches a Service by its ClusterIP from another pod', async () => {
    const body = await inClient('timeout', '5', 'wget', '-qO-', `http://${webIP}/`);
    assert.match(body, /^hello from web-/);
  });

  it('resolves a Service by short name, name.namespace and FQDN from a pod', async () => {
    for (const name of ['web', `web.${ns.name}`, `web.${ns.name}.svc.cluster.local`]) {
      assert.equal(await resolve(name, 80), webIP, name);
    }
  });

  it('resolves a headless StatefulSet pod name (db-0.db)', async () => {
    const dbPodIP = (
      await kubectl(['-n', ns.name, 'get', 'pod', 'db-0', '-o', 'jsonpath={.status.podIP}'])
    ).trim();
    assert.equal(await resolve('db-0.db', 5432), dbPodIP);
    assert.equal((await inClient('sh', '-c', 'nc db-0.db 5432 </dev/null')).trim(), 'db');
  });

  it('answers names outside the cluster with NXDOMAIN instead of forwarding them', async () => {
    const out = await inClient('sh', '-c', 'nslookup example.com; true');
    assert.match(out, /NXDOMAIN/);
  });

  it('runs kubectl exec', async () => {
    assert.equal((await inClient('echo', 'exec works')).trim(), 'exec works');
  });

  it('runs kubectl port-forward', async () => {
    const forward = await portForward(ns.name, 'deploy/web', 8080);
    try {
      const body = await new Promise<string>((resolve, reject) => {
        get(`http://127.0.0.1:${forward.localPort}/`, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      assert.match(body, /^hello from web-/);
    } finally {
      forward.process.kill();
    }
  });

  it('serves the API to a Docker container with TLS verified', async () => {
    const ca = readFileSync(join(clusterDir, 'pki', 'ca.crt'), 'utf8');
    const script = `
      const https = require('node:https');
      https.get({ host: 'host.docker.internal', port: 6443, path: '/version', ca: process.env.CA }, (res) => {
        let body = ''; res.on('data', (d) => body += d); res.on('end', () => console.log(res.statusCode, JSON.parse(body).gitVersion));
      }).on('error', (e) => { console.error(e.message); process.exit(1); });`;
    const result = await docker([
      'run',
      '--rm',
      '--add-host',
      'host.docker.internal:host-gateway',
      '-e',
      `CA=${ca}`,
      images.runtime,
      'node',
      '-e',
      script,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.trim(), /^200 v1\.\d+\.\d+/);
  });

  it('keeps a plain Docker container out of ClusterIPs, pod IPs and NodePorts', async () => {
    const targets = [
      `http://${webIP}:80/`,
      `http://${webPodIP}:8080/`,
      `http://172.17.0.1:${nodePort}/`,
      `http://10.199.0.1:${nodePort}/`,
    ];
    // The same targets answer from inside the cluster, so a refusal here is the isolation at work.
    assert.match(
      await inClient('timeout', '5', 'wget', '-qO-', `http://${webPodIP}:8080/`),
      /^hello from web-/,
    );
    assert.match(
      await inClient('timeout', '5', 'wget', '-qO-', `http://10.199.0.1:${nodePort}/`),
      /^hello from web-/,
    );
    for (const url of targets) {
      const result = await docker(['run', '--rm', images.busybox, 'timeout', '5', 'wget', '-qO-', url]);
      assert.notEqual(result.code, 0, `${url} answered a plain container: ${result.stdout}`);
    }
  });
});
