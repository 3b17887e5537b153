import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { CliTarget, CliUpOptions, DevcontainerCli } from '../../../src/devcontainer/cli.js';
import {
  createDevcontainerSession,
  createSidecarOnlySession,
  prepareDevcontainer,
} from '../../../src/devcontainer/session-containers.js';
import type {
  ContainerSpec,
  ContainerSummary,
  DockerClient,
  SessionSpec,
} from '../../../src/docker/index.js';
import { readTarEntries } from '../../../src/kube/volumes/copy.js';
import { DevboxError, isDevboxError } from '../../../src/util/errors.js';

interface FakeContainer {
  id: string;
  spec: ContainerSpec;
  state: string;
  files: Map<string, string>;
}

/** An engine in memory: enough of DockerClient for sessions. */
class FakeDocker {
  readonly endpoint = { host: 'unix:///fake.sock', source: 'default' as const };
  containers = new Map<string, FakeContainer>();
  volumes = new Map<string, Record<string, string>>();
  private next = 0;

  async imageExists(): Promise<boolean> {
    return true;
  }
  async inspectContainer(idOrName: string) {
    const c = [...this.containers.values()].find((x) => x.id === idOrName || x.spec.name === idOrName);
    if (!c) return undefined;
    return {
      id: c.id,
      name: c.spec.name ?? c.id,
      image: c.spec.image,
      labels: c.spec.labels ?? {},
      status: c.state,
    };
  }
  async createContainer(spec: ContainerSpec): Promise<string> {
    const id = `c${++this.next}`;
    this.containers.set(id, { id, spec, state: 'created', files: new Map() });
    return id;
  }
  async startContainer(id: string) {
    this.containers.get(id)!.state = 'running';
  }
  async stopContainer(id: string) {
    const c = this.containers.get(id);
    if (c) c.state = 'exited';
  }
  async removeContainer(id: string) {
    this.containers.delete(id);
  }
  async putArchive(id: string, _path: string, tar: Readable) {
    for (const entry of await readTarEntries(tar)) {
      if (entry.content) this.containers.get(id)!.files.set(entry.path, entry.content.toString());
    }
  }
  async listContainers(
    filter: { labels?: Record<string, string | undefined> } = {},
  ): Promise<ContainerSummary[]> {
    return [...this.containers.values()]
      .filter((c) =>
        Object.entries(filter.labels ?? {}).every(
          ([k, v]) => c.spec.labels?.[k] !== undefined && (v === undefined || c.spec.labels[k] === v),
        ),
      )
      .map((c) => ({
        id: c.id,
        name: c.spec.name ?? c.id,
        image: c.spec.image,
        labels: c.spec.labels ?? {},
        state: c.state,
        status: c.state,
        created: 0,
      }));
  }
  async createVolume(name: string, options: { labels?: Record<string, string> } = {}) {
    this.volumes.set(name, options.labels ?? {});
  }
  async listVolumes(filter: { labels?: Record<string, string | undefined> } = {}) {
    return [...this.volumes.entries()]
      .filter(([, labels]) =>
        Object.entries(filter.labels ?? {}).every(
          ([k, v]) => labels[k] !== undefined && (v === undefined || labels[k] === v),
        ),
      )
      .map(([name, labels]) => ({ name, labels }));
  }
  async removeVolume(name: string) {
    this.volumes.delete(name);
  }
}

/** A Dev Containers CLI stand-in that "creates" the container on the fake engine and records what it was given. */
class FakeCli implements DevcontainerCli {
  calls: {
    what: string;
    options: CliUpOptions | (CliTarget & { containerId: string });
    override?: any;
    envFile?: { text: string; mode: number };
  }[] = [];
  fail?: 'up' | 'run-user-commands';
  constructor(private readonly docker: FakeDocker) {}

  async up(options: CliUpOptions) {
    const override = JSON.parse(await fs.readFile(options.overrideConfig!, 'utf8'));
    const envArg = (override.runArgs as string[])
      .find((a) => a.startsWith('--env-file='))!
      .slice('--env-file='.length);
    const envFile = { text: await fs.readFile(envArg, 'utf8'), mode: (await fs.stat(envArg)).mode & 0o777 };
    this.calls.push({ what: 'up', options, override, envFile });
    const id = await this.docker.createContainer({
      image: 'vsc-x',
      name: 'devbox-api.shop',
      labels: options.idLabels,
    });
    await this.docker.startContainer(id);
    if (this.fail === 'up') throw new DevboxError('BAD_INPUT', 'devcontainer up failed: the build broke');
    return { containerId: id, remoteUser: 'node', remoteWorkspaceFolder: '/workspaces/p' };
  }
  async runUserCommands(target: CliTarget & { containerId: string }) {
    this.calls.push({ what: 'run-user-commands', options: target });
    if (this.fail === 'run-user-commands') throw new DevboxError('BAD_INPUT', 'postCreateCommand failed');
  }
}

const spec = (files?: SessionSpec['service']['files']): SessionSpec => ({
  session: { id: 's1', workload: 'deployment/api', namespace: 'shop', context: 'dev' },
  sidecar: {
    image: 'runtime',
    bundle: 'bundle',
    config: { a: 1 },
    ports: [{ containerPort: 9000, hostPort: 9000 }],
    name: 'devbox-api.shop-sidecar',
  },
  service: {
    image: '',
    env: { DB_PASSWORD: 's3cret', LOG_LEVEL: 'debug', CERT: 'line1\nline2', DEVBOX_SESSION: 's1' },
    mounts: [{ source: '/host/data', target: '/data', readOnly: true }],
    ...(files ? { files } : {}),
    name: 'devbox-api.shop',
  },
});

describe('createDevcontainerSession', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'devbox-dc-session-'));
    await fs.mkdir(join(dir, '.devcontainer'));
    await fs.writeFile(
      join(dir, '.devcontainer', 'devcontainer.json'),
      '{ "image": "x", "appPort": 3000, "runArgs": ["--init"], "containerEnv": { "LOG_LEVEL": "info", "EDITOR": "vi" } }',
    );
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('joins the sidecar, passes the env by a 0600 file, copies the pod’s files before the lifecycle commands', async () => {
    const docker = new FakeDocker();
    const cli = new FakeCli(docker);
    let workDir = '';
    const made = await createDevcontainerSession(
      docker as unknown as DockerClient,
      spec([{ path: '/etc/shop/greeting', content: 'hello' }]),
      {
        devcontainer: await prepareDevcontainer(dir),
        workspace: { mode: 'as-is', notes: [] },
        cli: (w) => {
          workDir = w;
          return cli;
        },
      },
    );
    const sidecar = docker.containers.get(made.sidecar.id)!;
    assert.deepEqual(
      sidecar.spec.ports,
      [
        { containerPort: 9000, hostPort: 9000 },
        { containerPort: 3000, hostPort: 3000, hostIp: '127.0.0.1' },
      ],
      'appPort is published on the sidecar',
    );
    assert.equal(sidecar.files.get('/devbox/sidecar.mjs'), 'bundle');

    const [up, userCommands] = cli.calls;
    assert.equal(up?.what, 'up');
    const options = up!.options as CliUpOptions;
    assert.equal(options.skipPostCreate, true);
    assert.equal(options.idLabels['devbox.session'], 's1');
    assert.equal(options.idLabels['devbox.role'], 'service');
    assert.deepEqual(up!.override.runArgs.slice(0, 3), [
      '--init',
      '--name=devbox-api.shop',
      `--network=container:${made.sidecar.id}`,
    ]);
    assert.ok(up!.override.runArgs.includes('--mount=type=bind,source=/host/data,target=/data,readonly'));
    assert.equal(up!.override.appPort, undefined);
    // A multi-line value would become a `docker run -e` argument, which ps shows: left out, and said so.
    assert.deepEqual(up!.override.containerEnv, { EDITOR: 'vi' });
    assert.ok(made.warnings.some((w) => /CERT is not passed to the dev container.*ps shows/.test(w)));
    assert.equal(up!.envFile!.mode, 0o600);
    assert.equal(up!.envFile!.text, 'DB_PASSWORD=s3cret\nLOG_LEVEL=debug\nDEVBOX_SESSION=s1\n');
    assert.equal(userCommands?.what, 'run-user-commands');
    assert.equal(docker.containers.get(made.service.id)!.files.get('/etc/shop/greeting'), 'hello');
    assert.deepEqual(made.warnings.filter((w) => /LOG_LEVEL/.test(w)).length, 1);
    await assert.rejects(fs.stat(workDir), 'the env file and override are removed');
  });

  it('runs the lifecycle commands within up when there are no files to copy', async () => {
    const docker = new FakeDocker();
    const cli = new FakeCli(docker);
    await createDevcontainerSession(docker as unknown as DockerClient, spec(), {
      devcontainer: await prepareDevcontainer(dir),
      workspace: {
        mode: 'translated',
        mount: 'type=bind,source=/host/p,target=/workspaces/p',
        folder: '/workspaces/p',
        notes: [],
      },
      cli: () => cli,
    });
    assert.deepEqual(
      cli.calls.map((c) => c.what),
      ['up'],
    );
    assert.equal((cli.calls[0]!.options as CliUpOptions).skipPostCreate, false);
    assert.equal(cli.calls[0]!.override.workspaceMount, 'type=bind,source=/host/p,target=/workspaces/p');
  });

  for (const step of ['up', 'run-user-commands'] as const) {
    it(`removes the sidecar and the dev container when ${step} fails`, async () => {
      const docker = new FakeDocker();
      const cli = new FakeCli(docker);
      cli.fail = step;
      await assert.rejects(
        createDevcontainerSession(docker as unknown as DockerClient, spec({ tar: Readable.from([]) }), {
          devcontainer: await prepareDevcontainer(dir),
          workspace: { mode: 'as-is', notes: [] },
          cli: () => cli,
        }),
        (err) => isDevboxError(err, 'BAD_INPUT'),
      );
      assert.equal(docker.containers.size, 0);
    });
  }

  it('refuses a container name taken by something else, before creating anything', async () => {
    const docker = new FakeDocker();
    await docker.createContainer({ image: 'nginx', name: 'devbox-api.shop' });
    await assert.rejects(
      createDevcontainerSession(docker as unknown as DockerClient, spec(), {
        devcontainer: await prepareDevcontainer(dir),
        workspace: { mode: 'as-is', notes: [] },
        cli: () => new FakeCli(docker),
      }),
      (err) => isDevboxError(err, 'CONFLICT') && /not made by devbox/.test(err.message),
    );
    assert.equal(docker.containers.size, 1);
  });
});

describe('createSidecarOnlySession', () => {
  it('puts the pod’s volumes on the sidecar and writes the env and labels for the editor', async () => {
    const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-sidecar-only-'));
    try {
      const docker = new FakeDocker();
      const files = { envFile: join(dir, 'session.env'), labelFile: join(dir, 'session.labels') };
      const made = await createSidecarOnlySession(
        docker as unknown as DockerClient,
        spec([
          { path: '/etc/shop/greeting', content: 'hello' },
          { path: '/etc/nginx/nginx.conf', content: 'conf' },
        ]),
        {
          files,
          podMounts: [
            { mountPath: '/etc/shop' },
            { mountPath: '/etc/nginx/nginx.conf', subPath: 'nginx.conf' },
          ],
        },
      );
      assert.deepEqual(made.volumes, [{ name: 'devbox-s1-pod-0', path: '/etc/shop' }]);
      assert.deepEqual(docker.volumes.get('devbox-s1-pod-0'), { 'devbox.session': 's1' });
      const sidecar = docker.containers.get(made.sidecar.id)!;
      assert.deepEqual(sidecar.spec.mounts, [
        { type: 'volume', source: 'devbox-s1-pod-0', target: '/etc/shop' },
      ]);
      assert.equal(sidecar.files.get('/etc/shop/greeting'), 'hello');
      assert.equal(made.service, 'devbox-api.shop');
      assert.ok(made.warnings.some((w) => /nginx\.conf mounts part of a volume/.test(w)));
      assert.ok(made.warnings.some((w) => /CERT is not passed to the dev container/.test(w)));
      assert.equal(
        await fs.readFile(files.envFile, 'utf8'),
        'DB_PASSWORD=s3cret\nLOG_LEVEL=debug\nDEVBOX_SESSION=s1\n',
      );
      assert.match(await fs.readFile(files.labelFile, 'utf8'), /^devbox\.session=s1$/m);
      assert.match(await fs.readFile(files.labelFile, 'utf8'), /^devbox\.role=service$/m);
      for (const f of [files.envFile, files.labelFile]) assert.equal((await fs.stat(f)).mode & 0o777, 0o600);
      assert.equal(
        await fs
          .readFile(join(dir, '.gitignore'), 'utf8')
          .then((t) => t.match(/^\/session\.(env|labels)$/gm)?.length),
        2,
      );
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });

  it('removes its volumes and sidecar when the sidecar does not become ready', async () => {
    const docker = new FakeDocker();
    const dir = await fs.mkdtemp(join(tmpdir(), 'devbox-sidecar-only-'));
    try {
      await assert.rejects(
        createSidecarOnlySession(
          docker as unknown as DockerClient,
          spec([{ path: '/etc/shop/greeting', content: 'x' }]),
          {
            files: { envFile: join(dir, 'e'), labelFile: join(dir, 'l') },
            podMounts: [{ mountPath: '/etc/shop' }],
            beforeJoin: async () => {
              throw new DevboxError('TIMEOUT', 'the sidecar was not ready');
            },
          },
        ),
        (err) => isDevboxError(err, 'TIMEOUT'),
      );
      assert.equal(docker.containers.size, 0);
      assert.equal(docker.volumes.size, 0);
      await assert.rejects(fs.stat(join(dir, 'e')), 'no env file is written');
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  });
});
