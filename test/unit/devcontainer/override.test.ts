import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bindMountArg, csvField, joinedConfig } from '../../../src/devcontainer/override.js';

/** The devcontainer.json variable, spelled out. */
const LWF = '$' + '{localWorkspaceFolder}';

describe('joinedConfig', () => {
  const config = {
    image: 'x',
    appPort: 3000,
    runArgs: ['-p', '3000:3000', '--init'],
    containerEnv: { LOG_LEVEL: 'info', EDITOR: 'vi' },
    features: { 'ghcr.io/devcontainers/features/node:1': {} },
    postCreateCommand: 'npm ci',
  };

  it('joins the sidecar, names the container, passes the env file and keeps everything else', () => {
    const { config: out, replaced } = joinedConfig(config, ['--init'], {
      sidecar: 'abc123',
      name: 'devbox-api',
      envFile: '/tmp/x/pod.env',
      env: { DEVBOX_SESSION: 's1', MULTI: 'a\nb' },
      envFileKeys: ['LOG_LEVEL', 'PORT'],
      mounts: [{ source: '/src, with comma', target: '/app', readOnly: true }],
    });
    assert.deepEqual(out.runArgs, [
      '--init',
      '--name=devbox-api',
      '--network=container:abc123',
      '--env-file=/tmp/x/pod.env',
      '--mount=type=bind,"source=/src, with comma",target=/app,readonly',
    ]);
    assert.equal(out.appPort, undefined);
    assert.deepEqual(out.containerEnv, { EDITOR: 'vi', DEVBOX_SESSION: 's1', MULTI: 'a\nb' });
    assert.deepEqual(replaced, ['LOG_LEVEL']);
    assert.deepEqual(out.features, config.features);
    assert.equal(out.postCreateCommand, 'npm ci');
    assert.equal(config.runArgs.length, 3, 'the input is not changed');
  });

  it('keeps a name the project chose, shares volumes, and replaces the workspace mount when asked', () => {
    const { config: out } = joinedConfig({ image: 'x' }, ['--name', 'mine'], {
      sidecar: 'devbox-api-sidecar',
      name: 'devbox-api',
      volumesFrom: 'devbox-api-sidecar',
      labelFile: `${LWF}/l`,
      workspace: { mount: 'type=volume,source=v,target=/w', folder: '/w' },
    });
    assert.deepEqual(out.runArgs, [
      '--name',
      'mine',
      '--network=container:devbox-api-sidecar',
      '--volumes-from=devbox-api-sidecar',
      `--label-file=${LWF}/l`,
    ]);
    assert.equal(out.workspaceMount, 'type=volume,source=v,target=/w');
    assert.equal(out.workspaceFolder, '/w');
    assert.equal('containerEnv' in out, false);
  });

  it('quotes CSV fields of --mount as the docker CLI reads them', () => {
    assert.equal(csvField('source=/a'), 'source=/a');
    assert.equal(csvField('source=/a,b'), '"source=/a,b"');
    assert.equal(csvField('source=/a"b'), '"source=/a""b"');
    assert.equal(bindMountArg({ source: '/a', target: '/b' }), '--mount=type=bind,source=/a,target=/b');
  });
});
