import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { sessionVolumeName, volumeRoots } from '../../../src/devcontainer/volumes.js';

const file = (path: string) => ({ path, content: 'x' });
const mounts = (...paths: string[]) => paths.map((mountPath) => ({ mountPath }));

describe('volumeRoots', () => {
  it('makes one volume per pod mount holding files, outermost first', () => {
    const roots = volumeRoots(
      [file('/etc/shop/greeting'), file('/etc/shop/nested/a'), file('/app/server.js'), file('/data/x')],
      mounts('/etc/shop', '/app', '/etc/shop/nested', '/unused'),
    );
    assert.deepEqual(roots.roots, ['/app', '/data', '/etc/shop']);
    assert.deepEqual(roots.warnings, []);
  });

  it('gives the service-account token its own directory and leaves subPath mounts out', () => {
    const roots = volumeRoots(
      [
        file('/var/run/secrets/kubernetes.io/serviceaccount/token'),
        file('/etc/nginx/nginx.conf'),
        file('/etc/app/x'),
      ],
      [{ mountPath: '/etc/nginx/nginx.conf', subPath: 'nginx.conf' }, { mountPath: '/etc/app' }],
    );
    assert.deepEqual(roots.roots, ['/etc/app', '/var/run/secrets/kubernetes.io/serviceaccount']);
    assert.match(roots.warnings[0]!, /\/etc\/nginx\/nginx\.conf mounts part of a volume \(subPath\)/);
    const tar = volumeRoots({ tar: Readable.from([]) }, [{ mountPath: '/etc/x.conf', subPath: 'x.conf' }]);
    assert.deepEqual(tar.roots, ['/var/run/secrets/kubernetes.io/serviceaccount']);
  });

  it('never covers the system or the sidecar’s own directory', () => {
    const roots = volumeRoots(
      [file('/etc/hosts.d/x'), file('/devbox/x'), file('/usr/share/x')],
      mounts('/devbox', '/usr', '/etc'),
    );
    assert.deepEqual(roots.roots, []);
    assert.equal(roots.warnings.length, 3);
  });

  it('uses the mount paths for a tar stream, whose entries are not known ahead', () => {
    assert.deepEqual(volumeRoots({ tar: Readable.from([]) }, mounts('/app/')).roots, [
      '/app',
      '/var/run/secrets/kubernetes.io/serviceaccount',
    ]);
    assert.deepEqual(volumeRoots(undefined, mounts('/app')).roots, []);
  });

  it('names volumes after the session', () => {
    assert.equal(sessionVolumeName('abc', 2), 'devbox-abc-pod-2');
  });
});
