import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { H2_PREFACE, type Sniffed, sniff } from '../../../src/agent/http/sniff.js';
import { fuzz, fuzzAsync, type Rng } from '../../support/fuzz.js';
import {
  ALICE,
  agentFor,
  httpApp,
  personal,
  rawExchange,
  request,
  sessionTo,
} from '../agent/http-fixtures.js';
import { Fixtures } from '../tunnel/harness.js';

const METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD', 'PROPFIND'];

function requestText(rng: Rng): string {
  const path = `/${rng.string(rng.int(20), 'abcxyz/?=&%._-0123')}`;
  const headers = [`Host: h${rng.int(9)}`];
  if (rng.chance(2)) headers.push(`X-Devbox-Session: ${rng.chance(2) ? ALICE : rng.string(24, 'abcdef')}`);
  if (rng.chance(3)) headers.push('Transfer-Encoding: chunked');
  if (rng.chance(3)) headers.push(`Content-Length: ${rng.int(20)}`);
  if (rng.chance(4)) headers.push('Expect: 100-continue');
  if (rng.chance(4)) headers.push('Connection: Upgrade', 'Upgrade: h2c');
  const body = rng.chance(2) ? `5\r\nhello\r\n0\r\n\r\n` : rng.string(rng.int(20), 'xyz');
  return `${rng.pick(METHODS)} ${path} HTTP/1.${rng.int(2)}\r\n${headers.join('\r\n')}\r\n\r\n${body}`;
}

/** The decision for each prefix of `input`: undefined until decided, then never changing. */
function decisions(input: Buffer): (Sniffed | undefined)[] {
  const out: (Sniffed | undefined)[] = [];
  for (let i = 1; i <= input.length; i++) out.push(sniff(input.subarray(0, i)));
  return out;
}

describe('fuzz: HTTP sniffing and routing', () => {
  const fx = new Fixtures();
  afterEach(() => fx.close());

  it('tells HTTP/1, HTTP/2 and the rest apart, and never changes its mind with more bytes', () => {
    fuzz('http-sniff', { rounds: 400 }, (rng) => {
      const valid = rng.chance(3)
        ? Buffer.concat([H2_PREFACE, rng.bytes(rng.int(30))])
        : Buffer.from(requestText(rng), 'latin1');
      const expected: Sniffed = valid.subarray(0, 3).toString() === 'PRI' ? 'h2' : 'http1';
      assert.equal(sniff(valid), expected);
      const input = rng.chance(2) ? rng.mutate(valid) : rng.bytes(rng.int(64));
      const seen = decisions(input);
      const first = seen.findIndex((d) => d !== undefined);
      if (first >= 0)
        for (const d of seen.slice(first)) assert.equal(d, seen[first], `input ${input.toString('hex')}`);
    });
  });

  it('answers or closes every mutated request and keeps serving', async () => {
    const pod = await httpApp(fx, 'pod');
    const alice = await httpApp(fx, 'alice');
    const { agent, port } = await agentFor(fx, pod.port);
    await sessionTo(fx, agent, personal(ALICE), alice.port);
    await fuzzAsync('http-routing', { rounds: 15, roundMs: 3_000 }, async (rng) => {
      const input = rng.mutate(Buffer.from(requestText(rng), 'latin1'));
      // A request the server still waits on (a body it was promised) is cut off after a while.
      await rawExchange(port, input, (t) => /\r\n\r\n/.test(t) && !t.startsWith('HTTP/1.1 100'), 400).catch(
        () => undefined,
      );
    });
    assert.equal(
      (await request(port, { path: '/still', headers: { 'x-devbox-session': ALICE } })).body,
      'alice GET /still',
    );
    assert.equal((await request(port, { path: '/still' })).body, 'pod GET /still');
  });
});
