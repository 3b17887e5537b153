/**
 * Cluster DNS from the local container: every name form a pod uses gets the
 * answers the pod gets, record for record, through the sidecar's DNS server
 * and the tunnel (Docker containers cannot reach cluster DNS otherwise).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { kubectl } from '../../support/cluster.js';
import { buildQuery, type QueryType, summarise } from '../../support/dns.js';
import { clusterIP, startWorld, type World } from './fixture.js';
import { DNS_PROBE, type DnsReport } from './probes.js';

const NOERROR = 'NOERROR';
const NXDOMAIN = 'NXDOMAIN';

/** What a side saw: its lookups, and each raw reply decoded here, independently of devbox's DNS code. */
interface Seen {
  resolvConf: DnsReport['resolvConf'];
  lookup: DnsReport['lookup'];
  raw: Record<string, { rcode: string; answers: string[] } | string>;
}

function decodeReport(report: DnsReport): Seen {
  const raw = Object.fromEntries(
    Object.entries(report.raw).map(([key, r]) => [
      key,
      'reply' in r ? summarise(Buffer.from(r.reply, 'base64')) : r.error,
    ]),
  );
  return { resolvConf: report.resolvConf, lookup: report.lookup, raw };
}

describe('cluster DNS in the local container', { timeout: 400_000 }, () => {
  let world: World;
  let local: Seen;
  let pod: Seen;
  let echoIP: string;
  let dbPodIP: string;
  const fqdn = (service: string) => `${service}.${world.ns}.svc.cluster.local`;

  before(async () => {
    world = await startWorld('tnl-dns', 'tnl-dns');
    echoIP = await clusterIP(world.ns, 'echo');
    dbPodIP = (
      await kubectl(['-n', world.ns, 'get', 'pod', 'db-0', '-o', 'jsonpath={.status.podIP}'])
    ).trim();
    const raw: [string, QueryType][] = [
      [fqdn('echo'), 'A'],
      [fqdn('echo'), 'AAAA'],
      [`_tcp-echo._tcp.${fqdn('echo')}`, 'SRV'],
      [`_udp-echo._udp.${fqdn('echo')}`, 'SRV'],
      [`_postgres._tcp.${fqdn('db')}`, 'SRV'],
      [fqdn('db'), 'A'],
      [`db-0.${fqdn('db')}`, 'A'],
      [`db-0.${fqdn('db')}`, 'AAAA'],
      [fqdn('legacy'), 'A'],
      [fqdn('legacy'), 'AAAA'],
      ['legacy.devbox.test', 'A'],
      [fqdn('nope'), 'A'],
    ];
    const ask = JSON.stringify({
      lookup: [
        'echo',
        `echo.${world.ns}`,
        `echo.${world.ns}.svc`,
        fqdn('echo'),
        `${fqdn('echo')}.`,
        'db-0.db',
        `db-0.db.${world.ns}`,
        'db',
        'legacy',
        `legacy.${world.ns}`,
        'legacy.devbox.test',
        'nope',
      ],
      raw: Object.fromEntries(
        raw.map(([name, type], i) => [
          `${name} ${type}`,
          buildQuery(0x100 + i, name, type).toString('base64'),
        ]),
      ),
    });
    [local, pod] = await Promise.all([
      world.local(DNS_PROBE, [ask]).then((out) => decodeReport(JSON.parse(out) as DnsReport)),
      world.inPod(DNS_PROBE, [ask]).then((out) => decodeReport(JSON.parse(out) as DnsReport)),
    ]);
  });

  after(async () => {
    await world?.teardown();
  });

  it("has the pod's search list and ndots, with the sidecar as nameserver", () => {
    assert.deepEqual(local.resolvConf.search, pod.resolvConf.search);
    assert.deepEqual(local.resolvConf.options, pod.resolvConf.options);
    assert.deepEqual(pod.resolvConf.search.slice(0, 1), [`${world.ns}.svc.cluster.local`]);
    assert.ok(local.resolvConf.options.includes('ndots:5'), local.resolvConf.options.join(' '));
    assert.deepEqual(local.resolvConf.nameservers, ['127.0.0.1']);
  });

  it('resolves a Service as svc, svc.ns, svc.ns.svc and FQDN to its ClusterIP, as a pod does', () => {
    for (const name of [
      'echo',
      `echo.${world.ns}`,
      `echo.${world.ns}.svc`,
      fqdn('echo'),
      `${fqdn('echo')}.`,
    ]) {
      assert.deepEqual(local.lookup[name], [echoIP], name);
      assert.deepEqual(local.lookup[name], pod.lookup[name], name);
    }
    const a = `${fqdn('echo')} A`;
    assert.deepEqual(local.raw[a], { rcode: NOERROR, answers: [`${fqdn('echo')} A ${echoIP}`] });
    assert.deepEqual(local.raw[a], pod.raw[a]);
  });

  it('answers SRV records for named ports (TCP, UDP, headless) as a pod gets them', () => {
    const tcp = `_tcp-echo._tcp.${fqdn('echo')} SRV`;
    assert.deepEqual(local.raw[tcp], {
      rcode: NOERROR,
      answers: [`_tcp-echo._tcp.${fqdn('echo')} SRV 0 100 7007 ${fqdn('echo')}`],
    });
    for (const key of [tcp, `_udp-echo._udp.${fqdn('echo')} SRV`, `_postgres._tcp.${fqdn('db')} SRV`]) {
      assert.deepEqual(local.raw[key], pod.raw[key], key);
    }
    assert.deepEqual(local.raw[`_postgres._tcp.${fqdn('db')} SRV`], {
      rcode: NOERROR,
      answers: [`_postgres._tcp.${fqdn('db')} SRV 0 100 5432 db-0.${fqdn('db')}`],
    });
  });

  it('resolves headless StatefulSet pod names (db-0.db) and the headless Service to the pod IP', () => {
    for (const name of ['db-0.db', `db-0.db.${world.ns}`, 'db']) {
      assert.deepEqual(local.lookup[name], [dbPodIP], name);
      assert.deepEqual(local.lookup[name], pod.lookup[name], name);
    }
    for (const key of [`db-0.${fqdn('db')} A`, `${fqdn('db')} A`]) {
      assert.deepEqual(local.raw[key], pod.raw[key], key);
    }
  });

  it('follows an ExternalName Service to its target, CNAME included', () => {
    for (const name of ['legacy', `legacy.${world.ns}`, 'legacy.devbox.test']) {
      assert.deepEqual(local.lookup[name], ['10.199.0.1'], name);
      assert.deepEqual(local.lookup[name], pod.lookup[name], name);
    }
    const key = `${fqdn('legacy')} A`;
    assert.deepEqual(local.raw[key], {
      rcode: NOERROR,
      answers: ['legacy.devbox.test A 10.199.0.1', `${fqdn('legacy')} CNAME legacy.devbox.test`],
    });
    assert.deepEqual(local.raw[key], pod.raw[key]);
  });

  it('answers AAAA without an error (NOERROR, as the pod gets it)', () => {
    for (const key of [`${fqdn('echo')} AAAA`, `db-0.${fqdn('db')} AAAA`, `${fqdn('legacy')} AAAA`]) {
      const answer = local.raw[key];
      assert.equal(typeof answer, 'object', `${key}: ${answer}`);
      assert.equal((answer as { rcode: string }).rcode, NOERROR, key);
      assert.deepEqual(answer, pod.raw[key], key);
    }
  });

  it('gives NXDOMAIN for a name the cluster does not know, as the pod gets it', () => {
    assert.deepEqual(local.raw[`${fqdn('nope')} A`], { rcode: NXDOMAIN, answers: [] });
    assert.deepEqual(local.raw[`${fqdn('nope')} A`], pod.raw[`${fqdn('nope')} A`]);
    assert.equal(local.lookup.nope, 'ENOTFOUND');
    assert.equal(local.lookup.nope, pod.lookup.nope);
  });
});
