import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { baseSystemEntries, NODE_UID, runtimeTag, shortId } from '../../../src/docker/runtime-image.js';

describe('runtime image pieces', () => {
  it('tags encode the Node version and a content hash', () => {
    const id = 'sha256:a83e61fdb0c6c1537cb7ce6d456d920c9cfbc8882c253a7882032a307e98c01b';
    assert.equal(shortId(id), 'a83e61fdb0c6');
    assert.equal(runtimeTag('20.20.2', id), 'devbox-runtime:node20.20.2-a83e61fdb0c6');
  });

  it('has a non-root node user (uid 1000), nobody, a sticky /tmp and a home owned by node', () => {
    const entries = baseSystemEntries();
    const file = (path: string) => {
      const entry = entries.find((e) => e.path === path);
      assert.ok(entry?.type === 'file' && 'content' in entry.source, path);
      return entry.source.content.toString();
    };
    assert.match(file('/etc/passwd'), new RegExp(`^node:x:${NODE_UID}:${NODE_UID}:`, 'm'));
    assert.match(file('/etc/passwd'), /^nobody:x:65534:65534:/m);
    assert.match(file('/etc/group'), new RegExp(`^node:x:${NODE_UID}:`, 'm'));
    assert.deepEqual(
      entries.find((e) => e.path === '/tmp'),
      { type: 'directory', path: '/tmp', mode: 0o1777 },
    );
    assert.deepEqual(
      entries.find((e) => e.path === '/home/node'),
      { type: 'directory', path: '/home/node', mode: 0o755, uid: NODE_UID, gid: NODE_UID },
    );
  });
});

describe('containers/ Dockerfiles', () => {
  // Users build these from the repository root after `npm run build`.
  const bundler = readFileSync('scripts/bundle.mjs', 'utf8');
  for (const name of ['agent', 'sidecar']) {
    it(`${name}: copies the bundle the bundler writes and starts it with node`, () => {
      const dockerfile = readFileSync(`containers/${name}/Dockerfile`, 'utf8');
      assert.match(bundler, /outfile: `dist\/bundle\/\$\{name\}\.mjs`/);
      assert.match(dockerfile, new RegExp(`^COPY dist/bundle/${name}\\.mjs /devbox/${name}\\.mjs$`, 'm'));
      assert.match(
        dockerfile,
        new RegExp(
          `^ENTRYPOINT \\["node", "--max-semi-space-size=1", "--expose-gc", "/devbox/${name}\\.mjs"\\]$`,
          'm',
        ),
      );
      assert.match(dockerfile, /^FROM \$\{NODE_IMAGE\}$/m);
    });
  }

  it('agent runs as a numeric non-root user; sidecar has nftables, iptables and iproute2 and runs as root', () => {
    assert.match(readFileSync('containers/agent/Dockerfile', 'utf8'), /^USER 1000:1000$/m);
    const sidecar = readFileSync('containers/sidecar/Dockerfile', 'utf8');
    assert.match(sidecar, /apt-get install -y --no-install-recommends nftables iptables iproute2/);
    assert.match(sidecar, /^USER 0:0$/m);
  });
});
