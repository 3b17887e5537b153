/**
 * Scripts for `node -e`, run unchanged in the local service container and in
 * the client pod (CommonJS, Node 20, no shell needed). Each prints one JSON
 * document, or JSON lines, on stdout.
 */

/** What {@link DNS_PROBE} prints. */
export interface DnsReport {
  resolvConf: { nameservers: string[]; search: string[]; options: string[] };
  /** getaddrinfo through the search list and ndots, as an app resolves: sorted IPv4 addresses, or the error code. */
  lookup: Record<string, string[] | string>;
  /** Each raw query's reply from the first nameserver, base64, or the error. Decoding is left to the test. */
  raw: Record<string, { reply: string } | { error: string }>;
}

/**
 * Argument: JSON `{ lookup: string[], raw: Record<key, base64 query> }`. Raw queries go over UDP
 * to the resolv.conf nameserver, so the reply is the one the pod's (or the sidecar's) DNS server
 * gives; the probe only carries bytes and knows nothing of the DNS format.
 */
export const DNS_PROBE = `
const dgram = require('node:dgram'), dns = require('node:dns'), fs = require('node:fs');
const ask = JSON.parse(process.argv[1]);
const conf = fs.readFileSync('/etc/resolv.conf', 'utf8');
const words = (key) => conf.split('\\n').filter((l) => l.startsWith(key + ' ')).flatMap((l) => l.trim().split(/\\s+/).slice(1));
const resolvConf = { nameservers: words('nameserver'), search: words('search'), options: words('options') };
function query(server, message) {
  const id = message.readUInt16BE(0);
  return new Promise((resolve) => {
    const s = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
    const done = (v) => { clearTimeout(timer); s.close(); resolve(v); };
    const timer = setTimeout(() => done({ error: 'timeout' }), 3000);
    s.on('message', (m) => { if (m.length >= 2 && m.readUInt16BE(0) === id) done({ reply: m.toString('base64') }); });
    s.on('error', (e) => done({ error: e.code || e.message }));
    s.send(message, 53, server);
  });
}
(async () => {
  const out = { resolvConf, lookup: {}, raw: {} };
  for (const name of ask.lookup) {
    try { out.lookup[name] = (await dns.promises.lookup(name, { all: true, family: 4 })).map((a) => a.address).sort(); }
    catch (e) { out.lookup[name] = e.code || e.message; }
  }
  for (const [key, message] of Object.entries(ask.raw)) out.raw[key] = await query(resolvConf.nameservers[0], Buffer.from(message, 'base64'));
  console.log(JSON.stringify(out));
})();
`;

/**
 * Arguments: host, port, message. Connects, sends the message, half-closes and prints
 * `{ address, echoed }` (`address` is the peer address the socket connected to).
 */
export const TCP_ECHO_PROBE = `
const net = require('node:net');
const [host, port, message] = process.argv.slice(1);
const socket = net.connect({ host, port: Number(port), timeout: 5000 });
let echoed = '', address;
socket.on('connect', () => { address = socket.remoteAddress; socket.end(message); });
socket.on('data', (d) => (echoed += d));
socket.on('timeout', () => socket.destroy(new Error('timeout')));
socket.on('error', (e) => { console.error(e.code || e.message); process.exit(1); });
socket.on('close', () => console.log(JSON.stringify({ address, echoed })));
`;

/**
 * Arguments: host, port, message. Sends one datagram (resending each 500 ms, at most
 * 6 times) and prints `{ reply }` with the first answer.
 */
export const UDP_ECHO_PROBE = `
const dgram = require('node:dgram');
const [host, port, message] = process.argv.slice(1);
const socket = dgram.createSocket('udp4');
let tries = 0;
const send = () => {
  if (tries++ === 6) { console.error('no UDP reply'); process.exit(1); }
  socket.send(message, Number(port), host);
};
const timer = setInterval(send, 500);
socket.on('message', (m) => { clearInterval(timer); socket.close(); console.log(JSON.stringify({ reply: m.toString() })); });
socket.on('error', (e) => { console.error(e.code || e.message); process.exit(1); });
send();
`;

/**
 * Arguments: url, count. Makes `count` requests one after another, each on a new
 * connection, and prints `{ answers }`: the `where` of each JSON body, or the error.
 */
export const WHERE_PROBE = `
const http = require('node:http');
const [url, count] = [process.argv[1], Number(process.argv[2])];
const one = () => new Promise((resolve) => {
  const req = http.get(url, { agent: false, timeout: 3000 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => { try { resolve(JSON.parse(body).where); } catch { resolve('bad body'); } });
    res.on('error', (e) => resolve(e.code || e.message));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve(e.code || e.message));
});
(async () => {
  const answers = [];
  for (let i = 0; i < count; i++) answers.push(await one());
  console.log(JSON.stringify({ answers }));
})();
`;

/**
 * Arguments: url, timeout ms. Downloads the body, hashing it as it arrives; prints
 * `{ status, where, bytes, sha256, ms }` (`where`: the server's x-where header). Exits 1 when the body has not ended in time.
 */
export const DOWNLOAD_PROBE = `
const http = require('node:http'), crypto = require('node:crypto');
const [url, limit] = [process.argv[1], Number(process.argv[2])];
const start = Date.now();
const hash = crypto.createHash('sha256');
let bytes = 0;
setTimeout(() => { console.error('download unfinished after ' + limit + ' ms: ' + bytes + ' bytes'); process.exit(1); }, limit).unref();
http.get(url, { agent: false }, (res) => {
  res.on('data', (d) => { hash.update(d); bytes += d.length; });
  res.on('end', () => console.log(JSON.stringify({ status: res.statusCode, where: res.headers['x-where'], bytes, sha256: hash.digest('hex'), ms: Date.now() - start })));
  res.on('error', (e) => { console.error(e.code || e.message); process.exit(1); });
}).on('error', (e) => { console.error(e.code || e.message); process.exit(1); });
`;

/**
 * Arguments: url, duration ms. Every 50 ms starts a request on a new connection
 * with a 300 ms timeout, for `duration` ms; prints one JSON line per request:
 * `{ t, done, where }` or `{ t, done, error }` (epoch ms).
 */
export const FAILOVER_PROBE = `
const http = require('node:http');
const [url, duration] = [process.argv[1], Number(process.argv[2])];
const start = Date.now();
const tick = setInterval(() => {
  if (Date.now() - start > duration) { clearInterval(tick); return; }
  const t = Date.now();
  const report = (fields) => console.log(JSON.stringify({ t, done: Date.now(), ...fields }));
  const req = http.get(url, { agent: false, timeout: 300 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => { try { report({ where: JSON.parse(body).where }); } catch { report({ error: 'bad body' }); } });
    res.on('error', (e) => report({ error: e.code || e.message }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => report({ error: e.code || e.message }));
}, 50);
`;

/**
 * Arguments: host, port, count, how (`end`: half-close, `destroy`: close). Opens `count`
 * connections that send nothing and close at once, like a TCP health check; prints
 * `{ closed }`, the number also closed by the far side, once all are or after 5 s.
 */
export const SILENT_CLOSE_PROBE = `
const net = require('node:net');
const [host, port, count, how] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), process.argv[4]];
let closed = 0;
const report = () => { console.log(JSON.stringify({ closed })); process.exit(0); };
for (let i = 0; i < count; i++) {
  const socket = net.connect({ host, port });
  socket.on('error', () => {});
  socket.on('close', () => { if (++closed === count) report(); });
  socket.on('connect', () => (how === 'end' ? socket.end() : socket.destroy()));
}
setTimeout(report, 5000);
`;
