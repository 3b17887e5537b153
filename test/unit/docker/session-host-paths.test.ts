import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ContainerInfo, ContainerMount, DockerClient } from '../../../src/docker/client.js';
import {
  type HostProbe,
  isRemoteEngine,
  ownContainerCandidates,
  resolveBindMounts,
  translateThroughMounts,
} from '../../../src/docker/host-paths.js';
import { isDevboxError } from '../../../src/util/errors.js';

const ID = 'd5bc4f4ba16d561afbad56dc873b46080518e108dfed1635ce84ac4a40d8f4ab';

/** /proc/self/mountinfo of a container on Docker 20.10 (cgroup v1), trimmed. */
const MOUNTINFO = `74 49 0:39 / / rw,relatime master:3 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/YGCT:/var/lib/docker/overlay2/l/UMI4,upperdir=/var/lib/docker/overlay2/546c/diff,workdir=/var/lib/docker/overlay2/546c/work
75 74 0:42 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
80 79 0:29 /docker/${ID} /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu
91 74 254:0 /var/lib/docker/containers/${ID}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/vda rw,discard
92 74 254:0 /var/lib/docker/containers/${ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw,discard
93 74 254:0 /var/lib/docker/containers/${ID}/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw,discard
94 74 254:0 /home/me/project /workspaces/project rw,relatime - ext4 /dev/vda rw,discard`;

const CGROUP_V1 = `9:name=systemd:/docker/${ID}\n1:cpu:/docker/${ID}\n0::/docker/${ID}`;
const OTHER = 'a'.repeat(64);

describe('ownContainerCandidates', () => {
  it('reads the id from the files Docker mounts into every container', () => {
    assert.deepEqual(ownContainerCandidates(MOUNTINFO), [ID]);
  });

  it('falls back to cgroup paths (cgroupfs and systemd drivers) and a short-id hostname', () => {
    assert.deepEqual(ownContainerCandidates('', CGROUP_V1), [ID]);
    assert.deepEqual(ownContainerCandidates('', `0::/system.slice/docker-${OTHER}.scope`), [OTHER]);
    assert.deepEqual(ownContainerCandidates('', '', 'd5bc4f4ba16d'), ['d5bc4f4ba16d']);
    assert.deepEqual(
      ownContainerCandidates(MOUNTINFO, `0::/system.slice/docker-${OTHER}.scope`, 'd5bc4f4ba16d'),
      [ID, OTHER, 'd5bc4f4ba16d'],
    );
  });

  it('finds nothing on a host (or in a VM with a stray /.dockerenv)', () => {
    assert.deepEqual(
      ownContainerCandidates('22 1 8:1 / / rw - ext4 /dev/sda1 rw', '0::/user.slice', 'laptop'),
      [],
    );
  });
});

describe('isRemoteEngine', () => {
  it('local sockets and loopback TCP are local; other hosts and ssh are remote', () => {
    assert.equal(isRemoteEngine({ host: 'unix:///var/run/docker.sock' }), false);
    assert.equal(isRemoteEngine({ host: 'npipe:////./pipe/docker_engine' }), false);
    assert.equal(isRemoteEngine({ host: 'tcp://127.0.0.1:2375' }), false);
    assert.equal(isRemoteEngine({ host: 'tcp://localhost:2376' }), false);
    assert.equal(isRemoteEngine({ host: 'tcp://[::1]:2375' }), false);
    assert.equal(isRemoteEngine({ host: 'tcp://10.0.0.5:2376' }), true);
    assert.equal(isRemoteEngine({ host: 'ssh://me@build-box' }), true);
  });
});

const MOUNTS: ContainerMount[] = [
  { type: 'bind', source: '/home/me/project', destination: '/workspaces/project', readOnly: false },
  { type: 'bind', source: '/home/me/project-data', destination: '/workspaces/project/data', readOnly: true },
  {
    type: 'volume',
    name: 'cache',
    source: '/var/lib/docker/volumes/cache/_data',
    destination: '/cache',
    readOnly: false,
  },
  { type: 'tmpfs', source: '', destination: '/scratch', readOnly: false },
  { type: 'bind', source: '/var/run/docker.sock', destination: '/var/run/docker.sock', readOnly: false },
];

describe('translateThroughMounts', () => {
  it('uses the longest mount that contains the path, on path-component boundaries', () => {
    assert.equal(
      translateThroughMounts('/workspaces/project/src/a.js', MOUNTS)?.hostPath,
      '/home/me/project/src/a.js',
    );
    assert.equal(translateThroughMounts('/workspaces/project', MOUNTS)?.hostPath, '/home/me/project');
    assert.equal(
      translateThroughMounts('/workspaces/project/data/x', MOUNTS)?.hostPath,
      '/home/me/project-data/x',
    );
    assert.equal(translateThroughMounts('/workspaces/project2', MOUNTS), undefined);
    assert.equal(
      translateThroughMounts('/cache/npm', MOUNTS)?.hostPath,
      '/var/lib/docker/volumes/cache/_data/npm',
    );
    assert.equal(
      translateThroughMounts('/scratch/x', MOUNTS),
      undefined,
      'tmpfs exists only in the container',
    );
    assert.equal(translateThroughMounts('/etc', MOUNTS), undefined);
  });
});

/** An engine that knows one container (ours) and a probe with fixture files; every existing path is real. */
function setup(
  options: { host?: string; known?: boolean; mountinfo?: string; exists?: (p: string) => boolean } = {},
) {
  const self: ContainerInfo = {
    id: ID,
    name: 'dev-container',
    image: 'mcr.microsoft.com/devcontainers/base',
    imageId: '',
    labels: {},
    running: true,
    status: 'running',
    exitCode: 0,
    tty: false,
    networkMode: 'bridge',
    mounts: MOUNTS,
  };
  const docker = {
    endpoint: { host: options.host ?? 'unix:///var/run/docker.sock', source: 'default' },
    inspectContainer: async (id: string) => (options.known !== false && id === ID ? self : undefined),
  } as unknown as DockerClient;
  const exists = options.exists ?? (() => true);
  const probe: HostProbe = {
    readFile: async (path) =>
      path === '/proc/self/mountinfo'
        ? (options.mountinfo ?? MOUNTINFO)
        : path === '/proc/self/cgroup'
          ? ''
          : undefined,
    hostname: () => 'devcontainer',
    realpath: async (path) =>
      exists(path) ? path.replace('/workspaces/project/link', '/workspaces/project/src') : undefined,
  };
  return { docker, probe };
}

describe('resolveBindMounts', () => {
  it('inside a container: translates through its mounts (symlinks resolved first, relative paths against cwd)', async () => {
    const { docker, probe } = setup();
    const result = await resolveBindMounts(
      docker,
      [
        { source: 'src', target: '/app/src', readOnly: true },
        { source: '/workspaces/project/link', target: '/app/link' },
        { source: '/cache/npm', target: '/root/.npm' },
      ],
      { cwd: '/workspaces/project', probe },
    );
    assert.equal(result.mode, 'container');
    assert.deepEqual(result.mounts, [
      { source: '/home/me/project/src', target: '/app/src', readOnly: true },
      { source: '/home/me/project/src', target: '/app/link' },
      { source: '/var/lib/docker/volumes/cache/_data/npm', target: '/root/.npm' },
    ]);
    assert.deepEqual(result.notes, [
      '/cache/npm lives in the Docker volume cache; mounting /var/lib/docker/volumes/cache/_data/npm.',
    ]);
  });

  it('inside a container: every path outside its mounts or missing is named in one BAD_INPUT', async () => {
    const { docker, probe } = setup({ exists: (p) => p !== '/workspaces/project/gone' });
    await assert.rejects(
      resolveBindMounts(
        docker,
        [
          { source: '/etc/ssl', target: '/ssl' },
          { source: '/scratch/tmp', target: '/tmp2' },
          { source: '/workspaces/project/gone', target: '/gone' },
        ],
        { probe },
      ),
      (err) => {
        assert.ok(isDevboxError(err, 'BAD_INPUT'));
        assert.match(err.message, /\/workspaces\/project\/gone does not exist/);
        assert.match(err.message, /\/etc\/ssl is inside devbox's own container \(dev-container\)/);
        assert.match(err.message, /\/scratch\/tmp is inside/);
        assert.match(
          err.hint ?? '',
          /\/cache, \/var\/run\/docker\.sock, \/workspaces\/project, \/workspaces\/project\/data/,
        );
        return true;
      },
    );
  });

  it('on the engine’s own machine: paths stay, missing ones are refused', async () => {
    const { docker, probe } = setup({
      mountinfo: '22 1 8:1 / / rw - ext4 /dev/sda1 rw',
      exists: (p) => p.startsWith('/home'),
    });
    const result = await resolveBindMounts(docker, [{ source: '/home/me/src', target: '/src' }], { probe });
    assert.deepEqual(result, {
      mounts: [{ source: '/home/me/src', target: '/src' }],
      mode: 'local',
      notes: [],
    });
    await assert.rejects(
      resolveBindMounts(docker, [{ source: '/nope', target: '/x' }], { probe }),
      /Cannot bind-mount -v source: \/nope does not exist/,
    );
  });

  it('in a container the engine does not know (Docker-in-Docker): paths stay, with a note', async () => {
    const { docker, probe } = setup({ known: false });
    const result = await resolveBindMounts(docker, [{ source: '/workspaces/project', target: '/p' }], {
      probe,
    });
    assert.equal(result.mode, 'local');
    assert.equal(result.mounts[0]?.source, '/workspaces/project');
    assert.match(result.notes[0] ?? '', /does not know/);
  });

  it('a remote engine: paths are the remote machine’s, said in a note; nothing is checked here', async () => {
    const { docker, probe } = setup({ host: 'ssh://me@build-box', exists: () => false });
    const result = await resolveBindMounts(docker, [{ source: 'src', target: '/src' }], {
      cwd: '/home/me/api',
      probe,
    });
    assert.equal(result.mode, 'remote');
    assert.deepEqual(result.mounts, [{ source: '/home/me/api/src', target: '/src' }]);
    assert.match(
      result.notes[0] ?? '',
      /ssh:\/\/me@build-box runs on another machine: -v sources \(\/home\/me\/api\/src\)/,
    );
  });

  it('no mounts, nothing to do', async () => {
    const { docker, probe } = setup();
    assert.deepEqual(await resolveBindMounts(docker, [], { probe }), {
      mounts: [],
      mode: 'local',
      notes: [],
    });
  });
});
