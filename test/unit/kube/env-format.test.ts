import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  quoteDotenvValue,
  SECRET_MASK,
  toDockerEnv,
  toDotenv,
  toEnvJson,
} from '../../../src/kube/env/format.js';
import type { ResolvedEnvVar } from '../../../src/kube/env/resolve.js';

const v = (name: string, value: string, secret = false): ResolvedEnvVar => ({
  name,
  value,
  secret,
  source: secret ? 'secret' : 'value',
});

const tricky = [
  v('PLAIN', 'abc-1.2_3/x:y@z'),
  v('EMPTY', ''),
  v('SPACES', 'hello world'),
  v('DOLLAR', 'a$HOME$(X)b'),
  v('QUOTES', `it's "quoted" \`cmd\` \\ back`),
  v('NEWLINES', 'line1\nline2\n'),
  v('EQUALS', 'a=b=c'),
  v('HASH', '#not a comment'),
  v('PASSWORD', 'p@ss word', true),
];

describe('env formats', () => {
  it('quotes only what needs quoting', () => {
    assert.equal(quoteDotenvValue('abc'), 'abc');
    assert.equal(quoteDotenvValue(''), '');
    assert.equal(quoteDotenvValue('a b'), "'a b'");
    assert.equal(quoteDotenvValue(`it's $x`), `"it's \\$x"`);
  });

  it('writes dotenv that a POSIX shell reads back unchanged', () => {
    const dir = mkdtempSync(join(tmpdir(), 'devbox-env-'));
    try {
      const file = join(dir, 'env');
      writeFileSync(file, toDotenv(tricky));
      const script = `set -a; . "${file}"; ${tricky.map((x) => `printf '%s\\0' "$${x.name}"`).join('; ')}`;
      const out = execFileSync('sh', ['-c', script], { env: {} }).toString('utf8').split('\0').slice(0, -1);
      assert.deepEqual(
        out,
        tricky.map((x) => x.value),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('masks secrets on request only', () => {
    assert.match(toDotenv(tricky), /^PASSWORD='p@ss word'$/m);
    assert.ok(toDotenv(tricky, { maskSecrets: true }).endsWith(`PASSWORD='${SECRET_MASK}'\n`));
    assert.match(toDotenv(tricky, { maskSecrets: true }), /^SPACES='hello world'$/m);
    const json = JSON.parse(toEnvJson(tricky, { maskSecrets: true })) as Record<string, string>;
    assert.equal(json.PASSWORD, SECRET_MASK);
    assert.equal(json.NEWLINES, 'line1\nline2\n');
  });

  it('keeps the order in JSON, integer-like names included', () => {
    const text = toEnvJson([v('B', '1'), v('10', 'x'), v('A', '2')]);
    assert.deepEqual(
      [...text.matchAll(/"([^"]+)":/g)].map((m) => m[1]),
      ['B', '10', 'A'],
    );
    assert.equal(toEnvJson([]), '{}\n');
  });

  it('gives Docker raw NAME=value strings', () => {
    assert.deepEqual(toDockerEnv([v('A', 'x y'), v('S', 'secret', true)]), ['A=x y', 'S=secret']);
  });
});
