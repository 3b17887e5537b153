/**
 * The agent container's start command: it runs the bundle only when the bundle's sha256 is the
 * one the pod template carries, so a changed ConfigMap cannot run code in the pod.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AGENT_ENV, agentStartCommand, TAMPERED_BUNDLE_EXIT } from '../../../src/tunnel/agent-contract.js';

const CODE = "console.log('agent code ran');\n";
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

describe('agent start command', () => {
  let dir: string;
  let bundle: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'devbox-start-'));
    bundle = join(dir, 'agent.mjs');
    await writeFile(bundle, CODE);
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** Runs the command as the container would (its argv, with `node` from this test run). */
  const start = (hash: string | undefined) => {
    const [, ...args] = agentStartCommand(bundle);
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    if (hash !== undefined) env[AGENT_ENV.bundleSha256] = hash;
    return spawnSync(process.execPath, args, { env, encoding: 'utf8', timeout: 10_000 });
  };

  it('runs the bundle whose hash the template carries', () => {
    const result = start(sha256(CODE));
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, 'agent code ran\n');
  });

  for (const [what, hash] of [
    ['a changed bundle', sha256(`${CODE}// changed\n`)],
    ['a template without the hash', undefined],
  ] as const) {
    it(`refuses ${what} before any of it runs, with one JSON log line saying why`, () => {
      const result = start(hash);
      assert.equal(result.status, TAMPERED_BUNDLE_EXIT);
      assert.equal(result.stdout, '', 'no line of the bundle ran');
      const line = JSON.parse(result.stderr.trim()) as Record<string, unknown>;
      assert.equal(line.level, 'error');
      assert.equal(line.component, 'agent');
      assert.match(String(line.msg), /does not match the sha256 in the pod template/);
      assert.equal(line.actual, sha256(CODE));
      assert.equal(line.expected, hash ?? null);
    });
  }
});
