import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { describe, it } from 'node:test';
import { DEFAULT_AGENT_IMAGE, settings } from '../../../src/settings/index.js';
import { isDevboxError } from '../../../src/util/errors.js';

describe('settings from the environment', () => {
  it('has defaults for everything', () => {
    assert.deepEqual(settings({}), {
      agentImage: DEFAULT_AGENT_IMAGE,
      clusterDomain: 'cluster.local',
      portForward: 'auto',
      cacheDir: `${homedir()}/.cache/devbox`,
      clusterDir: `${homedir()}/.devbox/cluster`,
      demoNamespace: 'devbox-demo',
    });
  });

  it('keeps its cache under DEVBOX_CACHE_DIR, else under XDG_CACHE_HOME', () => {
    assert.equal(settings({ DEVBOX_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x' }).cacheDir, '/c');
    assert.equal(settings({ XDG_CACHE_HOME: '/x' }).cacheDir, '/x/devbox');
  });

  it('reads DEVBOX_PORT_FORWARD in any case, and names the choices when it is wrong', () => {
    assert.equal(settings({ DEVBOX_PORT_FORWARD: ' WebSocket ' }).portForward, 'websocket');
    assert.equal(settings({ DEVBOX_PORT_FORWARD: 'spdy' }).portForward, 'spdy');
    assert.throws(
      () => settings({ DEVBOX_PORT_FORWARD: 'quic' }),
      (err) =>
        isDevboxError(err, 'BAD_INPUT') &&
        /DEVBOX_PORT_FORWARD=quic is not one of auto, spdy, spdy-websocket, websocket/.test(
          (err as Error).message,
        ),
    );
  });
});
