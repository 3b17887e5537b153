import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findDevcontainerConfig, loadDevcontainer } from '../../../src/devcontainer/config.js';
import { parseJsonc, positionAt } from '../../../src/devcontainer/jsonc.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('parseJsonc', () => {
  it('accepts comments and trailing commas', () => {
    const doc = parseJsonc(
      '{\n  // a comment\n  "image": "x", /* more */\n  "runArgs": ["--init",],\n}\n',
      'f.json',
    );
    assert.deepEqual(doc.value, { image: 'x', runArgs: ['--init'] });
  });

  it('reports every syntax error with its line and column', () => {
    const text = '{\n  "image": "x"\n  "runArgs": [\n    "--init"\n    "--privileged"\n  ]\n}\n';
    assert.throws(
      () => parseJsonc(text, '/p/.devcontainer/devcontainer.json'),
      (err) =>
        isDevboxError(err, 'BAD_INPUT') &&
        err.message.includes('/p/.devcontainer/devcontainer.json:3:3: a comma is expected') &&
        err.message.includes('/p/.devcontainer/devcontainer.json:5:5: a comma is expected'),
    );
  });

  it('reports an unterminated string and a missing closing brace', () => {
    assert.throws(
      () => parseJsonc('{ "image": "x', 'f.json'),
      (err) => isDevboxError(err) && /f\.json:1:12: unterminated string/.test(err.message),
    );
    assert.throws(
      () => parseJsonc('{ "image": "x"', 'f.json'),
      (err) => isDevboxError(err) && /f\.json:1:15: a closing brace is expected/.test(err.message),
    );
  });

  it('refuses a document that is not an object', () => {
    assert.throws(
      () => parseJsonc('[1]', 'f.json'),
      (err) => isDevboxError(err, 'BAD_INPUT') && /JSON object/.test(err.message),
    );
    assert.throws(
      () => parseJsonc('', 'f.json'),
      (err) => isDevboxError(err, 'BAD_INPUT'),
    );
  });

  it('keeps __proto__ as a plain key', () => {
    const doc = parseJsonc('{"__proto__": {"polluted": true}, "image": "x"}', 'f.json');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal((doc.value as Record<string, unknown>).image, 'x');
  });

  it('counts lines and columns from 1', () => {
    assert.deepEqual(positionAt('ab\ncd', 0), { line: 1, column: 1 });
    assert.deepEqual(positionAt('ab\ncd', 4), { line: 2, column: 2 });
  });
});

describe('findDevcontainerConfig and loadDevcontainer', () => {
  let root: string;
  const write = async (path: string, text: string) => {
    await fs.mkdir(join(root, path, '..'), { recursive: true });
    await fs.writeFile(join(root, path), text);
  };
  before(async () => {
    root = await fs.mkdtemp(join(tmpdir(), 'devbox-dc-config-'));
    await write('a/.devcontainer/devcontainer.json', '{"image": "x"}');
    await write('b/.devcontainer.json', '{"image": "y"}');
    await write('c/.devcontainer/one/devcontainer.json', '{"image": "z"}');
    await write('d/.devcontainer/one/devcontainer.json', '{"image": "z"}');
    await write('d/.devcontainer/two/devcontainer.json', '{"image": "z"}');
    await fs.mkdir(join(root, 'empty'));
    await write(
      'compose/.devcontainer/devcontainer.json',
      '{\n  "dockerComposeFile": "dc.yml",\n  "service": "app"\n}',
    );
    await write(
      'types/.devcontainer/devcontainer.json',
      '{\n  "image": "x",\n  "runArgs": "--init",\n  "containerEnv": {"A": 1}\n}',
    );
    await write('noimage/.devcontainer/devcontainer.json', '{ "name": "x" }');
  });
  after(() => fs.rm(root, { recursive: true, force: true }));

  it('finds .devcontainer/devcontainer.json, .devcontainer.json and a single nested one', async () => {
    assert.deepEqual(await findDevcontainerConfig(join(root, 'a')), {
      configFile: join(root, 'a/.devcontainer/devcontainer.json'),
      workspaceFolder: join(root, 'a'),
    });
    assert.deepEqual(await findDevcontainerConfig('b', root), {
      configFile: join(root, 'b/.devcontainer.json'),
      workspaceFolder: join(root, 'b'),
    });
    assert.deepEqual(await findDevcontainerConfig(join(root, 'c')), {
      configFile: join(root, 'c/.devcontainer/one/devcontainer.json'),
      workspaceFolder: join(root, 'c'),
    });
  });

  it('takes the file itself or its folder, with the project above .devcontainer', async () => {
    const file = join(root, 'c/.devcontainer/one/devcontainer.json');
    assert.deepEqual(await findDevcontainerConfig(file), {
      configFile: file,
      workspaceFolder: join(root, 'c'),
    });
    assert.deepEqual(await findDevcontainerConfig(join(root, 'c/.devcontainer/one')), {
      configFile: file,
      workspaceFolder: join(root, 'c'),
    });
  });

  it('names the candidates when there are several', async () => {
    await assert.rejects(
      findDevcontainerConfig(join(root, 'd')),
      (err) => isDevboxError(err, 'BAD_INPUT') && /one/.test(err.hint ?? '') && /two/.test(err.hint ?? ''),
    );
  });

  it('says where it looked when there is none, and what to do', async () => {
    await assert.rejects(
      findDevcontainerConfig(join(root, 'empty')),
      (err) =>
        isDevboxError(err, 'NOT_FOUND') &&
        /No devcontainer\.json/.test(err.message) &&
        /\.devcontainer\.json/.test(err.hint ?? '') &&
        /devbox devcontainer init/.test(err.hint ?? ''),
    );
    await assert.rejects(findDevcontainerConfig(join(root, 'missing')), (err) =>
      isDevboxError(err, 'NOT_FOUND'),
    );
  });

  it('refuses Docker Compose configurations with the position of the property', async () => {
    await assert.rejects(
      loadDevcontainer(join(root, 'compose')),
      (err) => isDevboxError(err, 'BAD_INPUT') && /devcontainer\.json:2:3: Docker Compose/.test(err.message),
    );
  });

  it('reports every type error at once', async () => {
    await assert.rejects(
      loadDevcontainer(join(root, 'types')),
      (err) =>
        isDevboxError(err, 'BAD_INPUT') &&
        /:3:3: "runArgs" must be an array/.test(err.message) &&
        /:4:20: containerEnv\.A must be a string/.test(err.message),
    );
    await assert.rejects(
      loadDevcontainer(join(root, 'noimage')),
      (err) => isDevboxError(err, 'BAD_INPUT') && /set "image" or "build"/.test(err.message),
    );
  });
});
