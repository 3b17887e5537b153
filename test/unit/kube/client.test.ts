import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { V1Pod } from '@kubernetes/client-node';
import { assertPermissions } from '../../../src/kube/access.js';
import { KubeApiError } from '../../../src/kube/api/errors.js';
import { createKubeClient, resourcePath, type WatchEvent } from '../../../src/kube/client.js';
import { loadKubeConfig } from '../../../src/kube/kubeconfig.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { FakeApi, json, status } from './fake-api.js';

const pod = (name: string, rv: string, extra: Partial<V1Pod> = {}): V1Pod => ({
  metadata: { name, namespace: 'shop', resourceVersion: rv },
  ...extra,
});

let api: FakeApi;
before(async () => {
  api = new FakeApi();
  await api.start();
});
after(() => api.stop());
afterEach(() => {
  api.requests.length = 0;
});

describe('KubeClient requests', () => {
  it('gets objects as plain JSON with the kubeconfig credentials, and undefined for 404', async () => {
    api.on('GET', '/apis/apps/v1/namespaces/shop/deployments/api', (_req, res) =>
      json(res, 200, {
        kind: 'Deployment',
        metadata: { name: 'api', creationTimestamp: '2026-01-01T00:00:00Z' },
        spec: { futureField: { x: 1 } },
      }),
    );
    const client = api.client();
    try {
      const d = (await client.get('Deployment', 'shop', 'api')) as unknown as Record<
        string,
        Record<string, unknown>
      >;
      // Unknown fields survive and timestamps stay strings.
      assert.deepEqual(d.spec, { futureField: { x: 1 } });
      assert.equal(d.metadata?.creationTimestamp, '2026-01-01T00:00:00Z');
      assert.equal(api.requests[0]?.headers.authorization, 'Bearer tok');
      assert.equal(await client.get('Deployment', 'shop', 'missing'), undefined);
      assert.equal(client.namespace, 'shop');
    } finally {
      client.close();
    }
  });

  it('follows list pages and sets kind and apiVersion on items', async () => {
    api.on('GET', '/api/v1/namespaces/shop/pods', (req, res) => {
      if (!req.query.get('continue'))
        json(res, 200, { metadata: { resourceVersion: '10', continue: 'page2' }, items: [pod('a', '1')] });
      else json(res, 200, { metadata: { resourceVersion: '11' }, items: [pod('b', '2')] });
    });
    const client = api.client();
    try {
      const list = await client.list('Pod', 'shop', { labelSelector: 'app=api' });
      assert.deepEqual(
        list.items.map((p) => [p.kind, p.apiVersion, p.metadata?.name]),
        [
          ['Pod', 'v1', 'a'],
          ['Pod', 'v1', 'b'],
        ],
      );
      assert.equal(list.resourceVersion, '11');
      assert.equal(api.requests[0]?.query.get('labelSelector'), 'app=api');
      assert.equal(api.requests[1]?.query.get('continue'), 'page2');
    } finally {
      client.close();
    }
  });

  it('replaces with the object as given, names the field manager, and patches with the chosen content type', async () => {
    api.on('PUT', '/api/v1/namespaces/shop/services/api', (req, res) => json(res, 200, JSON.parse(req.body)));
    api.on('PATCH', '/api/v1/namespaces/shop/services/api', (_req, res) => json(res, 200, {}));
    api.on('POST', '/api/v1/namespaces/shop/configmaps', (req, res) => json(res, 201, JSON.parse(req.body)));
    const client = api.client();
    try {
      const svc = {
        metadata: { name: 'api', namespace: 'shop', resourceVersion: '5' },
        spec: { unknownToClients: true },
      };
      await client.replace('Service', svc as never);
      const put = api.requests[0];
      assert.equal(put?.query.get('fieldManager'), 'devbox');
      assert.deepEqual(JSON.parse(put?.body ?? ''), { apiVersion: 'v1', kind: 'Service', ...svc });
      await client.patch('Service', 'shop', 'api', { metadata: { labels: { a: 'b' } } }, 'merge');
      assert.equal(api.requests[1]?.headers['content-type'], 'application/merge-patch+json');
      await client.patch('Service', 'shop', 'api', { spec: {} }, 'strategic');
      assert.equal(api.requests[2]?.headers['content-type'], 'application/strategic-merge-patch+json');
      await client.create('ConfigMap', { metadata: { name: 'x' }, data: { a: '1' } });
      assert.equal(
        api.requests[3]?.path,
        '/api/v1/namespaces/shop/configmaps',
        'namespace defaults to the client namespace',
      );
    } finally {
      client.close();
    }
  });

  it('turns API failures into DevboxErrors with the server message and a hint', async () => {
    api.on('GET', '/apis/apps/v1/namespaces/shop/statefulsets/forbidden', (_req, res) =>
      json(
        res,
        403,
        status(
          403,
          'Forbidden',
          'statefulsets.apps "forbidden" is forbidden: User "dev" cannot get resource "statefulsets"',
        ),
      ),
    );
    api.on('GET', '/apis/apps/v1/namespaces/shop/statefulsets/unauth', (_req, res) =>
      json(res, 401, status(401, 'Unauthorized', 'Unauthorized')),
    );
    api.on('PUT', '/apis/apps/v1/namespaces/shop/statefulsets/stale', (_req, res) =>
      json(
        res,
        409,
        status(
          409,
          'Conflict',
          'Operation cannot be fulfilled on statefulsets.apps "stale": the object has been modified',
        ),
      ),
    );
    const client = api.client();
    try {
      await assert.rejects(client.get('StatefulSet', 'shop', 'forbidden'), (err: unknown) => {
        assert.ok(err instanceof KubeApiError);
        assert.equal(err.code, 'FORBIDDEN');
        assert.equal(err.status, 403);
        assert.match(err.message, /cannot get resource "statefulsets"/);
        assert.match(err.hint ?? '', /devbox-developer-role\.yaml/);
        return true;
      });
      await assert.rejects(client.get('StatefulSet', 'shop', 'unauth'), (err: unknown) => {
        assert.ok(isDevboxError(err, 'FORBIDDEN'));
        assert.match(err.message, /rejected the credentials of context "test" \(401 Unauthorized\)/);
        return true;
      });
      await assert.rejects(
        client.replace('StatefulSet', { metadata: { name: 'stale', resourceVersion: '1' } }),
        (err: unknown) => err instanceof KubeApiError && err.code === 'CONFLICT' && err.status === 409,
      );
    } finally {
      client.close();
    }
  });

  it('retries reads the server is too busy for', async () => {
    let calls = 0;
    api.on('GET', '/api/v1/namespaces/shop/configmaps/busy', (_req, res) => {
      calls++;
      if (calls === 1) {
        res.writeHead(503, { 'Retry-After': '0' });
        res.end('busy');
      } else json(res, 200, { metadata: { name: 'busy' } });
    });
    const client = api.client();
    try {
      assert.equal((await client.get('ConfigMap', 'shop', 'busy'))?.metadata?.name, 'busy');
      assert.equal(calls, 2);
    } finally {
      client.close();
    }
  });

  it('says there is no cluster when nothing listens', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const file = api.kubeconfig();
    const text = (await import('node:fs'))
      .readFileSync(file, 'utf8')
      .replace(`127.0.0.1:${api.port}`, `127.0.0.1:${port}`);
    writeFileSync(file, text);
    const client = createKubeClient({ loaded: loadKubeConfig({ kubeconfig: file }, {}) });
    try {
      await assert.rejects(client.get('Pod', 'shop', 'x'), (err: unknown) => {
        assert.ok(isDevboxError(err, 'NO_CLUSTER'));
        assert.equal(err.message, `no cluster at http://127.0.0.1:${port} (context "test"): ECONNREFUSED`);
        assert.match(err.hint ?? '', /--context/);
        return true;
      });
    } finally {
      client.close();
    }
  });

  it('reads token files at each request, and sends basic auth and impersonation headers', async () => {
    api.on('GET', '/api/v1/namespaces/shop/pods/p', (_req, res) => json(res, 200, pod('p', '1')));
    const tokenFile = join(api.kubeconfig(), '..', 'token');
    writeFileSync(tokenFile, 'first\n');
    const fromFile = api.client([
      `    tokenFile: ${tokenFile}`,
      '    as: jane',
      '    as-groups: [devs, ops]',
    ]);
    const basic = api.client(['    username: jane', '    password: pw']);
    try {
      await fromFile.get('Pod', 'shop', 'p');
      writeFileSync(tokenFile, 'rotated\n');
      await fromFile.get('Pod', 'shop', 'p');
      await basic.get('Pod', 'shop', 'p');
      const [first, second, third] = api.requests;
      assert.equal(first?.headers.authorization, 'Bearer first');
      assert.equal(second?.headers.authorization, 'Bearer rotated');
      assert.equal(first?.headers['impersonate-user'], 'jane');
      assert.equal(first?.headers['impersonate-group'], 'devs, ops');
      assert.equal(third?.headers.authorization, `Basic ${Buffer.from('jane:pw').toString('base64')}`);
    } finally {
      fromFile.close();
      basic.close();
    }
  });

  it('runs exec credential plugins and reports their failures', async () => {
    api.on('GET', '/api/v1/namespaces/shop/pods/p', (req, res) =>
      json(res, 200, pod('p', '1', { metadata: { name: req.headers.authorization } })),
    );
    const dir = join(api.kubeconfig(), '..');
    const plugin = join(dir, 'plugin.mjs');
    writeFileSync(
      plugin,
      `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } }));`,
    );
    const broken = join(dir, 'broken.mjs');
    writeFileSync(broken, `process.stderr.write('login required'); process.exit(3);`);
    const execUser = (script: string) => [
      '    exec:',
      '      apiVersion: client.authentication.k8s.io/v1',
      `      command: ${JSON.stringify(process.execPath)}`,
      `      args: [${JSON.stringify(script)}]`,
      '      interactiveMode: Never',
    ];
    const good = api.client(execUser(plugin));
    const bad = api.client(execUser(broken));
    try {
      assert.equal((await good.get('Pod', 'shop', 'p'))?.metadata?.name, 'Bearer from-exec');
      await assert.rejects(bad.get('Pod', 'shop', 'p'), (err: unknown) => {
        assert.ok(isDevboxError(err, 'FORBIDDEN'));
        assert.match(err.message, /could not get credentials for context "test"/);
        return true;
      });
    } finally {
      good.close();
      bad.close();
    }
  });
});

describe('KubeClient watch', () => {
  it('lists, watches, reopens a watch the server ended, and relists after 410 Gone', async () => {
    let lists = 0;
    const watchRVs: string[] = [];
    let release: (() => void) | undefined;
    api.on('GET', '/api/v1/namespaces/shop/pods', (req, res) => {
      if (req.query.get('watch') !== '1') {
        lists++;
        const items = lists === 1 ? [pod('a', '1'), pod('b', '2')] : [pod('a', '7'), pod('c', '8')];
        return json(res, 200, { metadata: { resourceVersion: lists === 1 ? '2' : '8' }, items });
      }
      watchRVs.push(req.query.get('resourceVersion') ?? '');
      res.writeHead(200, { 'Content-Type': 'application/json' });
      const send = (type: string, object: unknown) => res.write(`${JSON.stringify({ type, object })}\n`);
      if (watchRVs.length === 1) {
        // A modification split across two writes, then the server's normal end of a watch.
        const line = JSON.stringify({
          type: 'MODIFIED',
          object: pod('a', '3', { spec: { nodeName: 'n1', containers: [] } }),
        });
        res.write(line.slice(0, 20));
        setTimeout(() => {
          res.write(`${line.slice(20)}\n`);
          res.end();
        }, 20);
      } else if (watchRVs.length === 2) {
        send('BOOKMARK', { metadata: { resourceVersion: '5' } });
        send('ERROR', status(410, 'Expired', 'too old resource version: 3 (5)'));
        res.end();
      } else {
        send('ADDED', pod('d', '9'));
      }
    });
    const client = api.client();
    const events: string[] = [];
    const controller = new AbortController();
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    let synced = 0;
    const watching = client.watch(
      'Pod',
      'shop',
      { onSynced: () => synced++ },
      (e: WatchEvent<V1Pod>) => {
        events.push(`${e.type} ${e.object.metadata?.name}@${e.object.metadata?.resourceVersion}`);
        if (e.object.metadata?.name === 'd') release?.();
      },
      controller.signal,
    );
    try {
      await done;
      controller.abort();
      await watching;
      assert.deepEqual(events, [
        'ADDED a@1',
        'ADDED b@2',
        'MODIFIED a@3',
        'MODIFIED a@7',
        'ADDED c@8',
        'DELETED b@2',
        'ADDED d@9',
      ]);
      assert.deepEqual(watchRVs, ['2', '3', '8']);
      assert.equal(synced, 2);
      const first = api.requests.find((r) => r.query.get('watch') === '1');
      assert.equal(first?.query.get('allowWatchBookmarks'), 'true');
    } finally {
      client.close();
    }
  });

  it('stops on a callback error and on 403', async () => {
    api.on('GET', '/api/v1/namespaces/shop/configmaps', (req, res) => {
      if (req.query.get('watch') === '1')
        return json(res, 403, status(403, 'Forbidden', 'configmaps is forbidden'));
      json(res, 200, {
        metadata: { resourceVersion: '1' },
        items: [{ metadata: { name: 'x', resourceVersion: '1' } }],
      });
    });
    const client = api.client();
    try {
      await assert.rejects(
        client.watch(
          'ConfigMap',
          'shop',
          {},
          () => {
            throw new Error('boom');
          },
          new AbortController().signal,
        ),
        /boom/,
      );
      await assert.rejects(
        client.watch('ConfigMap', 'shop', {}, () => {}, new AbortController().signal),
        (err: unknown) => isDevboxError(err, 'FORBIDDEN'),
      );
    } finally {
      client.close();
    }
  });

  it('waits for a condition and times out naming what it waited for', async () => {
    api.on('GET', '/apis/apps/v1/namespaces/shop/deployments', (req, res) => {
      const name = (req.query.get('fieldSelector') ?? '').replace('metadata.name=', '');
      if (req.query.get('watch') !== '1') {
        return json(res, 200, {
          metadata: { resourceVersion: '1' },
          items: [{ metadata: { name, resourceVersion: '1' }, status: { readyReplicas: 0 } }],
        });
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (name === 'api') {
        res.write(
          `${JSON.stringify({ type: 'MODIFIED', object: { metadata: { name, resourceVersion: '2' }, status: { readyReplicas: 1 } } })}\n`,
        );
      }
      // Otherwise stay silent until the client gives up.
    });
    const client = api.client();
    try {
      const ready = await client.waitFor(
        'Deployment',
        'shop',
        'api',
        (d) => (d?.status?.readyReplicas ?? 0) >= 1,
        { timeoutMs: 5000 },
      );
      assert.equal(ready?.status?.readyReplicas, 1);
      await assert.rejects(
        client.waitFor('Deployment', 'shop', 'slow', (d) => (d?.status?.readyReplicas ?? 0) >= 1, {
          timeoutMs: 200,
          describe: 'deployment/slow to roll out',
        }),
        (err: unknown) =>
          isDevboxError(err, 'TIMEOUT') &&
          err.message === 'timed out after 0 s waiting for deployment/slow to roll out',
      );
    } finally {
      client.close();
    }
  });
});

describe('KubeClient tokens and access checks', () => {
  it('mints service account tokens', async () => {
    api.on('POST', '/api/v1/namespaces/shop/serviceaccounts/devbox-sidecar/token', (req, res) => {
      const body = JSON.parse(req.body);
      json(res, 201, { ...body, status: { token: 'minted', expirationTimestamp: '2026-05-01T11:00:00Z' } });
    });
    const client = api.client();
    try {
      const t = await client.requestToken('shop', 'devbox-sidecar', { expirationSeconds: 1800 });
      assert.deepEqual(t, { token: 'minted', expiresAt: '2026-05-01T11:00:00Z' });
      const sent = JSON.parse(api.requests[0]?.body ?? '');
      assert.equal(sent.kind, 'TokenRequest');
      assert.equal(sent.spec.expirationSeconds, 1800);
      await assert.rejects(
        client.requestToken('shop', 'absent'),
        (err: unknown) => isDevboxError(err, 'NOT_FOUND') && /kubectl apply -n shop/.test(err.hint ?? ''),
      );
    } finally {
      client.close();
    }
  });

  it('checks every permission a command needs and names the missing ones', async () => {
    api.on('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', (req, res) => {
      const attrs = JSON.parse(req.body).spec.resourceAttributes;
      const denied =
        (attrs.verb === 'update' && attrs.resource === 'services') || attrs.subresource === 'token';
      json(res, 201, { status: { allowed: !denied } });
    });
    const client = api.client();
    try {
      await assert.rejects(assertPermissions(client, 'shop', 'up'), (err: unknown) => {
        assert.ok(isDevboxError(err, 'FORBIDDEN'));
        assert.equal(
          err.message,
          'devbox up needs permissions you lack in namespace "shop": update services, create serviceaccounts/token devbox-sidecar',
        );
        assert.match(err.hint ?? '', /devbox-developer/);
        return true;
      });
      const token = api.requests
        .map((r) => JSON.parse(r.body).spec.resourceAttributes)
        .find((a) => a.subresource === 'token');
      assert.deepEqual(token, {
        namespace: 'shop',
        verb: 'create',
        group: '',
        resource: 'serviceaccounts',
        subresource: 'token',
        name: 'devbox-sidecar',
      });
      await assertPermissions(client, 'shop', 'env');
    } finally {
      client.close();
    }
  });

  it('builds REST paths for core and group kinds', () => {
    assert.equal(
      resourcePath('Pod', 'shop', 'p', 'portforward'),
      '/api/v1/namespaces/shop/pods/p/portforward',
    );
    assert.equal(
      resourcePath('EndpointSlice', 'shop'),
      '/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices',
    );
    assert.equal(resourcePath('Node', 'ignored', 'n1'), '/api/v1/nodes/n1');
  });
});
