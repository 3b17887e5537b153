// Loopback throughput of one stream through the tunnel, upload and download, over a plain TCP socket
// and over the port-forward client (against a local WebSocket bridge that speaks v4.channel.k8s.io
// the way the API server does). Run after `npm run build`:
//   node scripts/bench-tunnel.mjs [--mib 1024] [--transport tcp|ws|both]
import http from 'node:http';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import { startAgent } from '../dist/src/agent/agent.js';
import { AGENT_DEFAULTS } from '../dist/src/agent/config.js';
import { TunnelClient } from '../dist/src/tunnel/client.js';
import { openPortForward } from '../dist/src/tunnel/portforward.js';

const { values } = parseArgs({
  options: { mib: { type: 'string', default: '1024' }, transport: { type: 'string', default: 'both' } },
});
const total = Number(values.mib) * 1024 * 1024;
const TOKEN = 'bench-token';

const listen = (server) =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));

// Sink: counts what it receives. Source: sends `total` bytes to whoever connects.
let sinkDone;
let sinkCount = 0;
const sink = net.createServer((s) => {
  s.on('data', (d) => {
    sinkCount += d.length;
    if (sinkCount >= total) sinkDone?.();
  });
  s.on('error', () => {});
});
const source = net.createServer((s) => {
  const chunk = Buffer.alloc(1024 * 1024, 7);
  let sent = 0;
  const pump = () => {
    while (sent < total) {
      sent += chunk.length;
      if (!s.write(chunk)) return s.once('drain', pump);
    }
    s.end();
  };
  s.on('error', () => {});
  pump();
});
const sinkPort = await listen(sink);
const sourcePort = await listen(source);

const agent = await startAgent({
  ...AGENT_DEFAULTS,
  token: TOKEN,
  tunnelPort: 0,
  intercepts: [],
  interceptHost: '127.0.0.1',
});

// A stand-in for the API server's port-forward: WebSocket v4 on one side, the agent's port on the other.
const bridge = http.createServer();
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  handleProtocols: () => 'v4.channel.k8s.io',
});
bridge.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    const port = agent.tunnelPort;
    const prefix = Buffer.from([port & 0xff, port >> 8]);
    ws.send(Buffer.concat([Buffer.from([0]), prefix]));
    ws.send(Buffer.concat([Buffer.from([1]), prefix]));
    const tcp = net.connect(port, '127.0.0.1');
    tcp.on('data', (d) => {
      ws.send(Buffer.concat([Buffer.from([0]), d]));
      if (ws.bufferedAmount > 4 * 1024 * 1024) tcp.pause();
    });
    const resumeTimer = setInterval(() => {
      if (tcp.isPaused() && ws.bufferedAmount < 1024 * 1024) tcp.resume();
    }, 1);
    ws.on('message', (m) => {
      if (!tcp.write(m.subarray(1))) ws.pause();
    });
    tcp.on('drain', () => ws.resume());
    const end = () => {
      clearInterval(resumeTimer);
      tcp.destroy();
      ws.terminate();
    };
    tcp.on('close', end);
    tcp.on('error', end);
    ws.on('close', end);
  });
});
const bridgePort = await listen(bridge);

async function connect(transport) {
  const duplex =
    transport === 'tcp'
      ? net.connect(agent.tunnelPort, '127.0.0.1')
      : await openPortForward({
          server: `http://127.0.0.1:${bridgePort}`,
          namespace: 'bench',
          pod: 'bench',
          port: agent.tunnelPort,
        });
  return TunnelClient.connect(duplex, { token: TOKEN });
}

async function upload(client) {
  sinkCount = 0;
  const done = new Promise((resolve) => {
    sinkDone = resolve;
  });
  const stream = await client.openTcp('127.0.0.1', sinkPort);
  const chunk = Buffer.alloc(1024 * 1024, 3);
  const started = process.hrtime.bigint();
  let sent = 0;
  while (sent < total) {
    sent += chunk.length;
    if (!stream.write(chunk)) await new Promise((resolve) => stream.once('drain', resolve));
  }
  await done;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  stream.destroy();
  return seconds;
}

async function download(client) {
  const stream = await client.openTcp('127.0.0.1', sourcePort);
  const started = process.hrtime.bigint();
  let got = 0;
  await new Promise((resolve, reject) => {
    stream.on('data', (d) => {
      got += d.length;
    });
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  if (got !== total) throw new Error(`downloaded ${got} of ${total} bytes`);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

const gbps = (seconds) => ((total * 8) / seconds / 1e9).toFixed(2);
const transports = values.transport === 'both' ? ['tcp', 'ws'] : [values.transport];
for (const transport of transports) {
  const client = await connect(transport);
  const up = await upload(client);
  const down = await download(client);
  console.log(
    `${transport === 'tcp' ? 'h2 over TCP socket     ' : 'h2 over port-forward ws'}  ${values.mib} MiB  upload ${gbps(up)} Gbit/s  download ${gbps(down)} Gbit/s`,
  );
  client.destroy();
}
await agent.close();
sink.close();
source.close();
bridge.close();
process.exit(0);
