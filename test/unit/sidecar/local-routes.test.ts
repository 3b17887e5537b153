import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { forwardSocket, newTrafficStats, type Outbound } from '../../../src/sidecar/forwarders.js';
import { LocalRoutes, parseLocalRoutes } from '../../../src/sidecar/local-routes.js';

/** An outbound that records what went to the tunnel and hands back an inert stream. */
function tunnel(): Outbound & { opened: string[] } {
  const opened: string[] = [];
  return {
    opened,
    openTcp: async (host, port) => {
      opened.push(`${host}:${port}`);
      return new PassThrough();
    },
    openUdp: async () => {
      throw new Error('no udp here');
    },
  };
}

describe('local routes', () => {
  let server: net.Server;
  let port = 0;
  const accepted: string[] = [];

  before(async () => {
    server = net.createServer((socket) => {
      accepted.push('direct');
      socket.on('error', () => {}); // a test that drops its end early resets the connection
      socket.end('hello from the local container');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });
  after(() => server.close());

  const route = (to: { host: string; port: number }) => ({
    service: 'shop/inventory',
    clusterIp: '10.96.0.20',
    port: 80,
    to,
    container: 'devbox-inventory.shop',
  });

  it("dials the other session's container directly for a routed Service, and the tunnel for the rest", async () => {
    const through = tunnel();
    const routes = new LocalRoutes(through);
    const { outbound } = routes;
    routes.set([route({ host: '127.0.0.1', port })]);

    const direct = await outbound.openTcp('10.96.0.20', 80);
    const text = await new Promise<string>((resolve) => {
      let got = '';
      direct.on('data', (d: Buffer) => (got += d.toString()));
      direct.on('end', () => resolve(got));
    });
    assert.equal(text, 'hello from the local container');
    await outbound.openTcp('10.96.0.20', 81);
    await outbound.openTcp('10.96.0.21', 80);
    assert.deepEqual(through.opened, ['10.96.0.20:81', '10.96.0.21:80']);
    assert.deepEqual(
      routes.status().map((r) => [r.service, r.connections, r.fellBack]),
      [['shop/inventory', 1, 0]],
    );
  });

  it('falls back to the tunnel when the local container does not answer, then rests the route', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const through = tunnel();
    const routes = new LocalRoutes(through);
    const { outbound } = routes;
    routes.set([route({ host: '127.0.0.1', port: deadPort })]);
    const before = accepted.length;
    await outbound.openTcp('10.96.0.20', 80);
    await outbound.openTcp('10.96.0.20', 80);
    assert.deepEqual(through.opened, ['10.96.0.20:80', '10.96.0.20:80']);
    assert.equal(accepted.length, before);
    assert.deepEqual(
      routes.status().map((r) => [r.connections, r.fellBack]),
      [[0, 2]],
    );
  });

  it('keeps the counters of a route that stays when the table is replaced', async () => {
    const routes = new LocalRoutes(tunnel());
    const { outbound } = routes;
    routes.set([route({ host: '127.0.0.1', port })]);
    (await outbound.openTcp('10.96.0.20', 80)).destroy();
    routes.set([route({ host: '127.0.0.1', port }), { ...route({ host: '127.0.0.1', port }), port: 8080 }]);
    assert.deepEqual(
      routes.status().map((r) => [r.port, r.connections]),
      [
        [80, 1],
        [8080, 0],
      ],
    );
    routes.set([]);
    assert.deepEqual(routes.status(), []);
  });

  it('hands a kept-alive connection opened through the cluster over to the new route at a quiet moment', async () => {
    const answering = (who: string) => http.createServer((_req, res) => res.end(who)).listen(0, '127.0.0.1');
    const cluster = answering('cluster');
    const local = answering('local');
    await Promise.all([cluster, local].map((s) => new Promise((r) => s.once('listening', r))));
    const portOf = (s: http.Server) => (s.address() as net.AddressInfo).port;
    // The tunnel: a plain connection to the "cluster" server.
    const routes = new LocalRoutes({
      openTcp: async () => net.connect(portOf(cluster), '127.0.0.1'),
      openUdp: async () => {
        throw new Error('no udp here');
      },
    });
    const { outbound } = routes;
    const entry = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      void forwardSocket(
        socket,
        (signal) => outbound.openTcp('10.96.0.20', 80, signal),
        { stats: newTrafficStats(), onError: () => {} },
        'test',
        (l, r) => outbound.joined?.('10.96.0.20', 80, l, r),
      );
    });
    await new Promise<void>((r) => entry.listen(0, '127.0.0.1', r));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const ask = () =>
      new Promise<string>((resolve, reject) =>
        http
          .get({ host: '127.0.0.1', port: portOf(entry as unknown as http.Server), agent }, (res) => {
            let body = '';
            res.on('data', (d) => (body += d));
            res.on('end', () => resolve(body));
          })
          .on('error', reject),
      );
    try {
      assert.equal(await ask(), 'cluster');
      routes.set([route({ host: '127.0.0.1', port: portOf(local) })]);
      // Still on the kept-alive connection: the answer came before the route, so the next one arms it.
      assert.equal(await ask(), 'cluster');
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(await ask(), 'local');
      assert.deepEqual(
        routes.status().map((r) => [r.connections, r.handedOver, r.fellBack]),
        [[1, 1, 0]],
      );
    } finally {
      agent.destroy();
      entry.close();
      cluster.close();
      local.close();
    }
  });

  it('refuses a table that is not one', () => {
    assert.throws(() => parseLocalRoutes({}), /expected a JSON array/);
    assert.throws(() => parseLocalRoutes([{ ...route({ host: 'inventory', port: 80 }) }]), /route 0 is not/);
    assert.throws(() => parseLocalRoutes([{ ...route({ host: '10.0.0.1', port: 70000 }) }]), /route 0/);
    assert.deepEqual(parseLocalRoutes([route({ host: '172.17.0.3', port: 8080 })]), [
      route({ host: '172.17.0.3', port: 8080 }),
    ]);
  });
});
