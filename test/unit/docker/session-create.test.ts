/**
 * createSession's order of work, rollback and error mapping against an
 * in-memory engine (the real engine's behaviour is in the integration tests).
 */
import assert from 'node:assert/strict';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type {
  ContainerInfo,
  ContainerSpec,
  ContainerSummary,
  DockerClient,
} from '../../../src/docker/client.js';
import { engineError } from '../../../src/docker/client.js';
import {
  createSession,
  findSessions,
  missingExecutable,
  portConflict,
  removeSession,
} from '../../../src/docker/session-containers.js';
import type { SessionSpec } from '../../../src/docker/session-spec.js';
import { DevboxError, isDevboxError } from '../../../src/util/errors.js';

interface FakeContainer {
  id: string;
  spec: ContainerSpec;
  running: boolean;
  archives: number;
}

/** Just enough engine for sessions; `fail` makes one step throw an engine error. */
class FakeEngine {
  readonly calls: string[] = [];
  readonly containers = new Map<string, FakeContainer>();
  readonly volumes = new Map<string, Record<string, string>>();
  images = new Set(['runtime:1', 'app:dev']);
  fail: Partial<Record<'create' | 'start' | 'put', (spec: ContainerSpec) => Error | undefined>> = {};
  private next = 1;

  readonly client = {
    endpoint: { host: 'unix:///var/run/docker.sock', source: 'default' },
    imageExists: async (ref: string) => this.images.has(ref),
    inspectContainer: async (idOrName: string): Promise<ContainerInfo | undefined> => {
      const c = this.find(idOrName);
      if (!c) return undefined;
      return {
        id: c.id,
        name: c.spec.name ?? '',
        image: c.spec.image,
        imageId: '',
        labels: c.spec.labels ?? {},
        running: c.running,
        status: c.running ? 'running' : 'created',
        exitCode: 0,
        tty: false,
        networkMode: c.spec.networkMode ?? 'default',
      };
    },
    createContainer: async (spec: ContainerSpec) => {
      this.calls.push(`create ${spec.name}`);
      const err = this.fail.create?.(spec);
      if (err) throw err;
      const id = `c${this.next++}`;
      this.containers.set(id, { id, spec, running: false, archives: 0 });
      return id;
    },
    putArchive: async (id: string, path: string, stream: Readable) => {
      for await (const _ of stream) {
        // drain
      }
      const c = this.containers.get(id);
      this.calls.push(`put ${c?.spec.name} ${path}`);
      const err = c && this.fail.put?.(c.spec);
      if (err) throw err;
      if (c) c.archives++;
    },
    startContainer: async (id: string) => {
      const c = this.containers.get(id);
      this.calls.push(`start ${c?.spec.name}`);
      const err = c && this.fail.start?.(c.spec);
      if (err) throw err;
      if (c) c.running = true;
    },
    stopContainer: async (id: string) => {
      const c = this.containers.get(id);
      this.calls.push(`stop ${c?.spec.name}`);
      if (c) c.running = false;
    },
    removeContainer: async (id: string) => {
      const c = this.containers.get(id);
      this.calls.push(`remove ${c?.spec.name ?? id}`);
      this.containers.delete(id);
    },
    listContainers: async (
      filter: { labels?: Record<string, string | undefined> } = {},
    ): Promise<ContainerSummary[]> =>
      [...this.containers.values()]
        .filter((c) =>
          Object.entries(filter.labels ?? {}).every(([k, v]) =>
            v === undefined ? k in (c.spec.labels ?? {}) : c.spec.labels?.[k] === v,
          ),
        )
        .map((c) => ({
          id: c.id,
          name: c.spec.name ?? '',
          image: c.spec.image,
          labels: c.spec.labels ?? {},
          state: c.running ? 'running' : 'created',
          status: '',
          created: 1_700_000_000,
        })),
    listVolumes: async (filter: { labels?: Record<string, string | undefined> } = {}) =>
      [...this.volumes]
        .filter(([, labels]) => Object.entries(filter.labels ?? {}).every(([k, v]) => labels[k] === v))
        .map(([name, labels]) => ({ name, labels })),
    removeVolume: async (name: string) => {
      this.calls.push(`remove volume ${name}`);
      this.volumes.delete(name);
    },
  };

  get docker(): DockerClient {
    return this.client as unknown as DockerClient;
  }

  private find(idOrName: string): FakeContainer | undefined {
    return (
      this.containers.get(idOrName) ?? [...this.containers.values()].find((c) => c.spec.name === idOrName)
    );
  }
}

function spec(): SessionSpec {
  return {
    session: { id: 's1', workload: 'api', namespace: 'shop' },
    sidecar: {
      image: 'runtime:1',
      bundle: 'x',
      config: {},
      ports: [{ containerPort: 3000, hostPort: 8080 }],
    },
    service: { image: 'app:dev', files: [{ path: '/etc/app/a', content: '1' }] },
  };
}

/** The engine's own error for a failed call, as the client reports it. */
function engineFailure(statusCode: number, message: string, what: string): DevboxError {
  return engineError(Object.assign(new Error(message), { statusCode, json: { message } }), what);
}

describe('createSession order and rollback', () => {
  it('copies files in before each start; the service is created after the sidecar started and beforeService ran', async () => {
    const engine = new FakeEngine();
    const session = await createSession(engine.docker, spec(), {
      beforeService: async (sidecar) => {
        engine.calls.push(`beforeService ${sidecar.name}`);
      },
    });
    assert.deepEqual(engine.calls, [
      'create devbox-api-sidecar',
      'put devbox-api-sidecar /',
      'start devbox-api-sidecar',
      'beforeService devbox-api-sidecar',
      'create devbox-api',
      'put devbox-api /',
      'start devbox-api',
    ]);
    assert.equal(session.id, 's1');
    assert.equal(
      engine.containers.get(session.service.id)?.spec.networkMode,
      `container:${session.sidecar.id}`,
    );
  });

  it('a failure after the sidecar started removes the service first, then the sidecar', async () => {
    const engine = new FakeEngine();
    engine.fail.start = (s) =>
      s.name === 'devbox-api'
        ? engineFailure(
            500,
            'OCI runtime create failed: exec: "/app": stat /app: no such file or directory',
            'start',
          )
        : undefined;
    await assert.rejects(createSession(engine.docker, spec()), (err) => {
      assert.ok(isDevboxError(err, 'BAD_INPUT'), String(err));
      assert.match(err.message, /\/app is not in image app:dev/);
      return true;
    });
    assert.deepEqual(engine.calls.slice(-2), ['remove devbox-api', 'remove devbox-api-sidecar']);
    assert.equal(engine.containers.size, 0);
  });

  it('a taken port is a CONFLICT naming it and the -p to change', async () => {
    const engine = new FakeEngine();
    engine.fail.start = () =>
      engineFailure(
        500,
        'driver failed programming external connectivity on endpoint devbox-api-sidecar (abc): Bind for 0.0.0.0:8080 failed: port is already allocated',
        'start',
      );
    await assert.rejects(createSession(engine.docker, spec()), (err) => {
      assert.ok(isDevboxError(err, 'CONFLICT'));
      assert.equal(err.message, 'Host port 8080 (for container port 3000/tcp) is already in use');
      assert.match(err.hint ?? '', /-p <free port>:3000` \(e\.g\. `-p 8081:3000`\)/);
      return true;
    });
    assert.equal(engine.containers.size, 0);
  });

  it('missing images are NOT_FOUND before anything is created', async () => {
    const engine = new FakeEngine();
    engine.images.delete('app:dev');
    await assert.rejects(createSession(engine.docker, spec()), (err) => {
      assert.ok(isDevboxError(err, 'NOT_FOUND'));
      assert.match(err.message, /Image app:dev is not on the Docker engine/);
      return true;
    });
    engine.images = new Set(['app:dev']);
    await assert.rejects(createSession(engine.docker, spec()), /sidecar image runtime:1/);
    assert.deepEqual(engine.calls, []);
  });

  it('an image removed between the check and the create is still NOT_FOUND, with the sidecar rolled back', async () => {
    const engine = new FakeEngine();
    engine.fail.create = (s) =>
      s.name === 'devbox-api' ? engineFailure(404, 'No such image: app:dev', 'create container') : undefined;
    await assert.rejects(createSession(engine.docker, spec()), (err) => isDevboxError(err, 'NOT_FOUND'));
    assert.equal(engine.containers.size, 0);
  });

  it('a failed copy rolls back; so does a failing beforeService', async () => {
    const engine = new FakeEngine();
    engine.fail.put = (s) => (s.name === 'devbox-api' ? new Error('disk full') : undefined);
    await assert.rejects(createSession(engine.docker, spec()), /disk full/);
    assert.equal(engine.containers.size, 0);
    engine.fail = {};
    await assert.rejects(
      createSession(engine.docker, spec(), {
        beforeService: async () => {
          throw new DevboxError('TIMEOUT', 'not ready');
        },
      }),
      (err) => isDevboxError(err, 'TIMEOUT'),
    );
    assert.equal(engine.containers.size, 0);
  });

  it('a rollback that fails says what was left and how to clean it', async () => {
    const engine = new FakeEngine();
    engine.fail.start = () => new DevboxError('INTERNAL', 'boom');
    engine.client.removeContainer = async () => {
      throw new Error('engine gone');
    };
    await assert.rejects(createSession(engine.docker, spec()), (err) => {
      assert.ok(isDevboxError(err, 'INTERNAL'));
      assert.match(
        err.hint ?? '',
        /Containers left behind: devbox-api-sidecar; remove them with `devbox clean`/,
      );
      return true;
    });
  });

  it('names taken by another container are a CONFLICT; a devbox session is replaced only when asked', async () => {
    const engine = new FakeEngine();
    await engine.client.createContainer({ name: 'devbox-api', image: 'nginx' });
    await assert.rejects(
      createSession(engine.docker, spec()),
      /devbox-api already exists and was not made by devbox/,
    );
    engine.containers.clear();

    const first = await createSession(engine.docker, spec());
    const second = { ...spec(), session: { id: 's2', workload: 'api', namespace: 'shop' } };
    await assert.rejects(createSession(engine.docker, second), (err) => {
      assert.ok(isDevboxError(err, 'CONFLICT'));
      assert.match(
        err.message,
        /A devbox session for api already exists \(container devbox-api-sidecar, running, session s1\)/,
      );
      assert.match(err.hint ?? '', /devbox down api/);
      return true;
    });
    const replaced = await createSession(engine.docker, second, { replace: true });
    assert.equal(engine.containers.has(first.sidecar.id), false);
    assert.equal(engine.containers.has(replaced.sidecar.id), true);
  });
});

describe('removeSession and findSessions', () => {
  it('stops the service before the sidecar, removes both and the session volumes, and is idempotent', async () => {
    const engine = new FakeEngine();
    await createSession(engine.docker, spec());
    engine.volumes.set('devbox-api-files', { 'devbox.session': 's1' });
    engine.volumes.set('other', { 'devbox.session': 's9' });
    assert.equal((await findSessions(engine.docker, { workload: 'api' }))[0]?.state, 'running');
    engine.calls.length = 0;
    assert.deepEqual(await removeSession(engine.docker, 's1'), {
      containers: ['devbox-api', 'devbox-api-sidecar'],
      volumes: ['devbox-api-files'],
    });
    assert.deepEqual(engine.calls, [
      'stop devbox-api',
      'stop devbox-api-sidecar',
      'remove devbox-api',
      'remove devbox-api-sidecar',
      'remove volume devbox-api-files',
    ]);
    assert.deepEqual(await removeSession(engine.docker, 's1'), { containers: [], volumes: [] });
    assert.deepEqual(await findSessions(engine.docker), []);
    assert.ok(engine.volumes.has('other'));
  });
});

describe('engine error texts', () => {
  it('recognises both ways a host port is taken', () => {
    assert.equal(
      portConflict(
        'Error starting userland proxy: listen tcp4 127.0.0.1:18555: bind: address already in use',
        [{ containerPort: 80, hostPort: 18555, hostIp: '127.0.0.1' }],
      )?.message,
      'Host port 127.0.0.1:18555 (for container port 80/tcp) is already in use',
    );
    assert.equal(portConflict('Bind for 0.0.0.0:9000 failed: port is already allocated', [])?.port, 9000);
    assert.equal(portConflict('listen udp [::]:53: bind: address already in use', [])?.port, 53);
    assert.equal(portConflict('No such image: x', []), undefined);
  });

  it('finds the executable a start could not run', () => {
    assert.equal(missingExecutable('exec: "mv": executable file not found in $PATH: unknown'), 'mv');
    assert.equal(
      missingExecutable('exec: "/nonexist": stat /nonexist: no such file or directory: unknown'),
      '/nonexist',
    );
    assert.equal(missingExecutable('permission denied'), undefined);
  });
});
