/**
 * Seeded fuzzing of the configuration files devbox reads: kubeconfigs (any YAML a user or a
 * cloud CLI wrote) and devcontainer.json (JSON with comments). Bad files are BAD_INPUT (or
 * NOT_FOUND / NO_CLUSTER where the loader documents it), never a crash; what loads is well typed.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadDevcontainer } from '../../../src/devcontainer/config.js';
import { assertJoinable, planJoin } from '../../../src/devcontainer/join-plan.js';
import { parseJsonc } from '../../../src/devcontainer/jsonc.js';
import { loadKubeConfig } from '../../../src/kube/kubeconfig.js';
import { isDevboxError } from '../../../src/util/errors.js';
import { fuzz, fuzzAsync, onlyTypedErrors, perturb, type Rng, randomValue } from '../../support/fuzz.js';

const dir = mkdtempSync(join(tmpdir(), 'devbox-fuzz-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function validKubeconfig(rng: Rng): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'dev',
    clusters: [
      { name: 'c', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority': 'ca.crt' } },
    ],
    users: [
      { name: 'u', user: rng.pick([{ token: 't' }, { exec: { command: 'aws' } }, { 'as-groups': ['g'] }]) },
    ],
    contexts: [{ name: 'dev', context: { cluster: 'c', user: 'u', namespace: 'shop' } }],
  };
}

const KUBECONFIG_ERRORS = (err: unknown) =>
  isDevboxError(err, 'BAD_INPUT') || isDevboxError(err, 'NOT_FOUND') || isDevboxError(err, 'NO_CLUSTER');

describe('fuzz: configuration files', () => {
  it('a kubeconfig loads to a well-typed context or fails with a typed error', () => {
    const file = join(dir, 'kubeconfig');
    fuzz('kubeconfig', { rounds: 60 }, (rng) => {
      let doc: unknown = validKubeconfig(rng);
      for (let i = rng.int(4); i > 0; i--) doc = perturb(rng, doc);
      let text = stringify(doc);
      if (rng.chance(4)) text = rng.mutate(Buffer.from(text)).toString('latin1');
      if (rng.chance(20))
        text = 'a: &a [x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n';
      writeFileSync(file, text);
      const context = rng.chance(3) ? rng.pick(['dev', 'nope', '']) : undefined;
      const loaded = onlyTypedErrors(
        KUBECONFIG_ERRORS,
        () => loadKubeConfig({ kubeconfig: file, context }, {}),
        text,
      );
      if (!loaded) return;
      assert.equal(typeof loaded.cluster.server, 'string', text);
      assert.ok(loaded.namespace !== '' && typeof loaded.namespace === 'string', text);
      assert.equal(typeof loaded.context, 'string');
      for (const value of [
        loaded.user.token,
        loaded.user.certFile,
        loaded.cluster.caFile,
        loaded.user.impersonate,
      ]) {
        assert.ok(value === undefined || typeof value === 'string', text);
      }
      assert.ok(
        loaded.cluster.caFile === undefined || loaded.cluster.caFile.startsWith('/'),
        'paths made absolute',
      );
    });
  });

  it('JSON with comments reads back the value it was written from, comments and trailing commas aside', () => {
    fuzz('jsonc round trip', { rounds: 500 }, (rng) => {
      const value = { ...(randomValue(rng, 1) as object), image: 'node:20' };
      const text = JSON.stringify(value, null, 2)
        .split('\n')
        .map((line) => (rng.chance(4) ? `${line} // note` : line))
        .join('\n')
        .replace(/\n}$/, rng.chance(2) ? ',\n}' : '\n}');
      const wellFormed = !/,\n\}$/.test(text) || Object.keys(value).length > 0;
      const doc = onlyTypedErrors(
        (e) => isDevboxError(e, 'BAD_INPUT'),
        () => parseJsonc(text, 'devcontainer.json'),
        text,
      );
      if (wellFormed) assert.deepEqual(doc?.value, JSON.parse(JSON.stringify(value)), text);
    });
  });

  it('a devcontainer.json loads and plans its join, or fails with BAD_INPUT naming a position', async () => {
    const project = join(dir, 'project');
    const file = join(project, '.devcontainer.json');
    mkdirSync(project);
    await fuzzAsync('devcontainer.json', { rounds: 200 }, async (rng) => {
      let config: unknown = {
        image: 'node:20',
        runArgs: ['--cap-add=NET_RAW', '-p', '8080:80'],
        appPort: [3000, '127.0.0.1:9229:9229'],
        containerEnv: { A: 'b' },
      };
      for (let i = rng.int(4); i > 0; i--) config = perturb(rng, config);
      let text = JSON.stringify(config) ?? 'null';
      if (rng.chance(3)) text = rng.mutate(Buffer.from(text)).toString('utf8');
      writeFileSync(file, text);
      let loaded: Awaited<ReturnType<typeof loadDevcontainer>> | undefined;
      try {
        loaded = await loadDevcontainer(project);
      } catch (err) {
        if (!isDevboxError(err, 'BAD_INPUT'))
          throw new Error(`untyped error ${err} on ${text}`, { cause: err });
        assert.match(err.message, /devcontainer\.json/);
        return;
      }
      const plan = planJoin(loaded.doc, loaded.config);
      onlyTypedErrors(
        (e) => isDevboxError(e, 'BAD_INPUT'),
        () => assertJoinable(file, plan),
        text,
      );
      for (const port of plan.publish)
        assert.ok(port.containerPort >= 1 && port.containerPort <= 65535, text);
    });
  });
});
