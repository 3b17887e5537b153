import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createKubeClient } from '../../../src/kube/client.js';
import { loadKubeConfig } from '../../../src/kube/kubeconfig.js';
import { isDevboxError } from '../../../src/util/errors.js';

let dir: string;
let a: string;
let b: string;

function kubeconfig(
  current: string | undefined,
  contexts: { name: string; cluster: string; namespace?: string }[],
  clusters: { name: string; server: string; ca?: string }[],
) {
  return [
    'apiVersion: v1',
    'kind: Config',
    current ? `current-context: ${current}` : '',
    'clusters:',
    ...clusters.flatMap((c) => [
      `- name: ${c.name}`,
      '  cluster:',
      `    server: ${c.server}`,
      ...(c.ca ? [`    certificate-authority: ${c.ca}`] : []),
    ]),
    'contexts:',
    ...contexts.flatMap((c) => [
      `- name: ${c.name}`,
      '  context:',
      `    cluster: ${c.cluster}`,
      '    user: dev',
      ...(c.namespace ? [`    namespace: ${c.namespace}`] : []),
    ]),
    'users:',
    '- name: dev',
    '  user:',
    '    token: t0k3n',
    '',
  ].join('\n');
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'devbox-kubeconfig-'));
  a = join(dir, 'a.yaml');
  b = join(dir, 'b.yaml');
  writeFileSync(
    a,
    kubeconfig(
      'alpha',
      [{ name: 'alpha', cluster: 'one', namespace: 'shop' }],
      [{ name: 'one', server: 'https://one.example:6443', ca: 'certs/ca.pem' }],
    ),
  );
  writeFileSync(
    b,
    kubeconfig(
      'beta',
      [
        { name: 'alpha', cluster: 'two' },
        { name: 'beta', cluster: 'two' },
      ],
      [{ name: 'two', server: 'https://two.example:6443' }],
    ),
  );
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe('loadKubeConfig', () => {
  it('merges KUBECONFIG like kubectl: missing files skipped, first definition and current-context win', () => {
    const env = { KUBECONFIG: [a, join(dir, 'missing.yaml'), b].join(delimiter) };
    const cfg = loadKubeConfig({}, env);
    assert.equal(cfg.context, 'alpha');
    assert.equal(cfg.cluster.server, 'https://one.example:6443');
    assert.equal(cfg.namespace, 'shop');
    assert.deepEqual(cfg.files, [a, b]);
    // Relative paths are relative to the file that holds them.
    assert.equal(cfg.cluster.caFile, join(dir, 'certs/ca.pem'));
    assert.equal(cfg.user.token, 't0k3n');

    const beta = loadKubeConfig({ context: 'beta', namespace: 'dev' }, env);
    assert.equal(beta.cluster.server, 'https://two.example:6443');
    assert.equal(beta.namespace, 'dev');
    assert.equal(loadKubeConfig({ context: 'beta' }, env).namespace, 'default');
  });

  it('reads only --kubeconfig when given, and ~/.kube/config by default', () => {
    const cfg = loadKubeConfig({ kubeconfig: b }, { KUBECONFIG: a });
    assert.equal(cfg.context, 'beta');
    const home = join(dir, 'home');
    mkdirSync(join(home, '.kube'), { recursive: true });
    writeFileSync(
      join(home, '.kube', 'config'),
      kubeconfig(
        'beta',
        [{ name: 'beta', cluster: 'two' }],
        [{ name: 'two', server: 'https://home.example' }],
      ),
    );
    assert.equal(loadKubeConfig({}, { HOME: home }).cluster.server, 'https://home.example');
  });

  it('hands a CA given as a file to the client as PEM, and names an unreadable one', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    mkdirSync(join(dir, 'certs'), { recursive: true });
    writeFileSync(join(dir, 'certs', 'ca.pem'), pem);
    const client = createKubeClient({ loaded: loadKubeConfig({ kubeconfig: a }, {}) });
    try {
      assert.equal(client.cluster.caPem, pem);
    } finally {
      client.close();
    }
    rmSync(join(dir, 'certs'), { recursive: true });
    assert.throws(
      () => createKubeClient({ loaded: loadKubeConfig({ kubeconfig: a }, {}) }),
      (err: unknown) =>
        isDevboxError(err, 'BAD_INPUT') &&
        err.message.includes('certificate-authority of cluster "one"') &&
        err.message.includes(join(dir, 'certs/ca.pem')),
    );
  });

  it('skips malformed entries and refuses a file that is not a kubeconfig', () => {
    const odd = join(dir, 'odd.yaml');
    writeFileSync(
      odd,
      [
        'current-context: ok',
        'clusters:',
        '- name: broken',
        '- cluster: {server: https://nameless}',
        '- name: good',
        '  cluster: {server: https://good.example/}',
        'contexts:',
        '- name: ok',
        '  context: {cluster: good, user: nobody}',
        'users: nope',
        '',
      ].join('\n'),
    );
    const cfg = loadKubeConfig({ kubeconfig: odd }, {});
    assert.equal(cfg.cluster.server, 'https://good.example');
    assert.equal(cfg.user.name, 'nobody');
    const list = join(dir, 'list.yaml');
    writeFileSync(list, '- a\n- b\n');
    assert.throws(
      () => loadKubeConfig({ kubeconfig: list }, {}),
      (err: unknown) => isDevboxError(err, 'BAD_INPUT') && err.message.includes(list),
    );
  });

  it('names the flag to fix', () => {
    assert.throws(
      () => loadKubeConfig({ kubeconfig: join(dir, 'nope.yaml') }, {}),
      (err: unknown) => isDevboxError(err, 'BAD_INPUT') && err.hint === 'check --kubeconfig',
    );
    assert.throws(
      () => loadKubeConfig({ context: 'alhpa' }, { KUBECONFIG: a }),
      (err: unknown) =>
        isDevboxError(err, 'NOT_FOUND') &&
        err.message.startsWith('context "alhpa" not found') &&
        err.hint === 'did you mean alpha?',
    );
    assert.throws(
      () => loadKubeConfig({}, { KUBECONFIG: join(dir, 'missing.yaml'), HOME: dir }),
      (err: unknown) =>
        isDevboxError(err, 'NO_CLUSTER') && /none of the files in KUBECONFIG exist/.test(err.hint ?? ''),
    );
    const noCurrent = join(dir, 'nocurrent.yaml');
    writeFileSync(
      noCurrent,
      kubeconfig(undefined, [{ name: 'x', cluster: 'c' }], [{ name: 'c', server: 'https://c' }]),
    );
    assert.throws(
      () => loadKubeConfig({ kubeconfig: noCurrent }, {}),
      (err: unknown) => isDevboxError(err, 'BAD_INPUT') && err.hint === 'pass --context (x)',
    );
  });
});
