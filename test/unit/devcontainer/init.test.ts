import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { initializeCommand, initPaths, rebaseConfig } from '../../../src/devcontainer/init.js';

/** The devcontainer.json variable, spelled out. */
const LWF = '$' + '{localWorkspaceFolder}';

describe('devcontainer init pieces', () => {
  it('puts the configuration and its files in .devcontainer/devbox-<workload>', () => {
    const paths = initPaths('/p', 'api');
    assert.equal(paths.configFile, join('/p', '.devcontainer', 'devbox-api', 'devcontainer.json'));
    assert.equal(paths.inWorkspace(paths.envFile), `${LWF}/.devcontainer/devbox-api/session.env`);
  });

  it('rewrites the project config’s relative paths for the deeper folder', () => {
    const out = rebaseConfig(
      {
        build: { dockerfile: 'Dockerfile', context: '..', args: { A: '1' } },
        features: { './local': { x: 1 }, 'ghcr.io/devcontainers/features/node:1': {} },
        postCreateCommand: 'make',
      },
      '/p/.devcontainer',
      '/p/.devcontainer/devbox-api',
    );
    assert.deepEqual(out.build, { dockerfile: '../Dockerfile', context: '../..', args: { A: '1' } });
    assert.deepEqual(Object.keys(out.features ?? {}), ['../local', 'ghcr.io/devcontainers/features/node:1']);
    assert.equal(out.postCreateCommand, 'make');
  });

  it('turns the old dockerFile into build with the context it implied', () => {
    const out = rebaseConfig({ dockerFile: 'Dockerfile' }, '/p', '/p/.devcontainer/devbox-api');
    assert.deepEqual(out.build, { dockerfile: '../../Dockerfile', context: '../..' });
    assert.equal(out.dockerFile, undefined);
    const untouched = rebaseConfig({ build: { dockerfile: `${'$'}{localEnv:DF}` } }, '/p', '/q');
    assert.equal(untouched.build?.dockerfile, `${'$'}{localEnv:DF}`);
  });

  it('starts the sidecar only, with the files the runArgs read', () => {
    assert.deepEqual(
      initializeCommand({
        devbox: ['npx', 'devbox'],
        workload: 'deployment/api',
        namespace: 'shop',
        context: 'dev',
        container: 'app',
        envFile: 'E',
        labelFile: 'L',
        publish: ['127.0.0.1:3000:3000'],
      }),
      [
        'npx',
        'devbox',
        'up',
        'deployment/api',
        '-n',
        'shop',
        '--context',
        'dev',
        '-c',
        'app',
        '-p',
        '127.0.0.1:3000:3000',
        '--sidecar-only',
        '--write-env',
        'E',
        '--write-labels',
        'L',
      ],
    );
  });
});
