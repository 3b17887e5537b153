/**
 * The dev loop against a Docker engine, the same cases for the local engine and
 * a remote one: a change and a deletion reach the container, `restart` restarts
 * it, `rebuild` replaces it (keeping what it added) and a failed build leaves
 * it running. Files travel only through the engine's API.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DockerClient } from '../../src/docker/client.js';
import { filesTar } from '../../src/docker/session-files.js';
import { type Cycle, type DevLoop, resolveSyncRules, startDevLoop } from '../../src/session/sync/index.js';

export const SYNC_TEST_LABELS = { 'devbox.test': 'sync' };

/** A project with an app, a Dockerfile and a .dockerignore, in a fresh directory. */
export async function makeProject(runtimeImage: string): Promise<string> {
  const project = await mkdtemp(join(tmpdir(), 'devbox-sync-it-'));
  await mkdir(join(project, 'src', 'lib'), { recursive: true });
  await writeFile(join(project, 'src', 'app.js'), 'v1');
  await writeFile(join(project, 'src', 'lib', 'old.js'), 'old');
  await writeFile(join(project, 'src', 'secret.env'), 'no');
  await writeFile(join(project, '.dockerignore'), 'src/*.env\n');
  await writeFile(join(project, 'Dockerfile'), `FROM ${runtimeImage}\nCOPY src /app/src\n`);
  return project;
}

/** Reads a container file with Node (the runtime image has no shell); undefined when missing. */
export async function readInContainer(
  docker: DockerClient,
  id: string,
  path: string,
): Promise<string | undefined> {
  const r = await docker.exec(id, [
    'node',
    '-e',
    'const f=require("fs");const p=process.argv[1];process.stdout.write(f.existsSync(p)?"="+f.readFileSync(p,"utf8"):"missing")',
    path,
  ]);
  assert.equal(r.exitCode, 0, r.stderr);
  return r.stdout === 'missing' ? undefined : r.stdout.slice(1);
}

/** A container that counts its starts in /tmp/starts and idles. */
export async function startAppContainer(docker: DockerClient, image: string, name: string): Promise<string> {
  await docker.removeContainer(name, { force: true });
  const id = await docker.createContainer({
    name,
    image,
    labels: SYNC_TEST_LABELS,
    entrypoint: ['node'],
    cmd: ['-e', 'require("fs").appendFileSync("/tmp/starts","x"); setInterval(() => {}, 1e9)'],
    env: { FROM_DEVBOX: 'yes' },
    init: true,
  });
  // What `up` copies in before the start (the pod's files): a rebuild must carry it over.
  await docker.putArchive(id, '/', filesTar([{ path: '/etc/podinfo/labels', content: 'app=api' }]));
  await docker.startContainer(id);
  return id;
}

export async function removeSyncContainers(docker: DockerClient): Promise<void> {
  for (const c of await docker.listContainers({ labels: SYNC_TEST_LABELS, all: true }))
    await docker.removeContainer(c.id, { force: true });
}

/** Resolves with the next cycle of `loop` (bounded). */
export function nextCycle(loop: DevLoop, timeoutMs = 60_000): Promise<Cycle> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no sync cycle within ${timeoutMs} ms`)), timeoutMs);
    loop.onCycle((cycle) => {
      clearTimeout(timer);
      resolve(cycle);
    });
  });
}

export interface SyncCaseOptions {
  docker: DockerClient;
  runtimeImage: string;
  name: string;
}

export async function syncChangeAndDeletion(o: SyncCaseOptions): Promise<void> {
  const project = await makeProject(o.runtimeImage);
  const id = await startAppContainer(o.docker, o.runtimeImage, o.name);
  const notices: string[] = [];
  const loop = await startDevLoop({
    docker: o.docker,
    serviceId: id,
    rules: await resolveSyncRules(['src:/app/src'], project),
    project,
    onChange: 'none',
    notice: (t) => notices.push(t),
  });
  try {
    assert.equal(await readInContainer(o.docker, id, '/app/src/app.js'), 'v1');
    assert.equal(await readInContainer(o.docker, id, '/app/src/lib/old.js'), 'old');
    assert.equal(
      await readInContainer(o.docker, id, '/app/src/secret.env'),
      undefined,
      '.dockerignore honoured',
    );

    let cycle = nextCycle(loop);
    await writeFile(join(project, 'src', 'app.js'), 'v2');
    assert.deepEqual(
      { ...(await cycle), changedAt: 0, doneAt: 0 },
      { written: 1, deleted: 0, action: 'none', changedAt: 0, doneAt: 0 },
    );
    assert.equal(await readInContainer(o.docker, id, '/app/src/app.js'), 'v2');

    cycle = nextCycle(loop);
    await rm(join(project, 'src', 'lib'), { recursive: true });
    assert.equal((await cycle).deleted, 1);
    assert.equal(await readInContainer(o.docker, id, '/app/src/lib/old.js'), undefined);
    assert.equal(await readInContainer(o.docker, id, '/app/src/app.js'), 'v2');
    assert.equal(
      await readInContainer(o.docker, id, '/tmp/starts'),
      'x',
      'with none the app is not restarted',
    );
  } finally {
    await loop.close();
    await o.docker.removeContainer(id, { force: true });
    await rm(project, { recursive: true, force: true });
  }
}

export async function syncRestart(o: SyncCaseOptions): Promise<void> {
  const project = await makeProject(o.runtimeImage);
  const id = await startAppContainer(o.docker, o.runtimeImage, o.name);
  const loop = await startDevLoop({
    docker: o.docker,
    serviceId: id,
    rules: await resolveSyncRules(['src:/app/src'], project),
    project,
    onChange: 'restart',
    notice: () => {},
  });
  try {
    assert.equal(await readInContainer(o.docker, id, '/tmp/starts'), 'xx', 'restarted after the first copy');
    const cycle = nextCycle(loop);
    await writeFile(join(project, 'src', 'app.js'), 'v2');
    assert.equal((await cycle).action, 'restarted');
    assert.equal(loop.serviceId, id, 'the same container');
    assert.equal(await readInContainer(o.docker, id, '/tmp/starts'), 'xxx');
    assert.equal(await readInContainer(o.docker, id, '/app/src/app.js'), 'v2');
  } finally {
    await loop.close();
    await o.docker.removeContainer(id, { force: true });
    await rm(project, { recursive: true, force: true });
  }
}

export async function syncRebuild(o: SyncCaseOptions): Promise<void> {
  const project = await makeProject(o.runtimeImage);
  const id = await startAppContainer(o.docker, o.runtimeImage, o.name);
  const notices: string[] = [];
  const loop = await startDevLoop({
    docker: o.docker,
    serviceId: id,
    rules: await resolveSyncRules(['src:/app/src'], project),
    project,
    onChange: 'rebuild',
    build: { dir: project },
    notice: (t) => notices.push(t),
  });
  try {
    let cycle = nextCycle(loop, 120_000);
    await writeFile(join(project, 'src', 'app.js'), 'v2');
    assert.equal((await cycle).action, 'rebuilt', notices.join('\n'));
    const next = loop.serviceId;
    assert.notEqual(next, id);
    const info = await o.docker.inspectContainer(next);
    assert.equal(info?.name, o.name, 'the new container has the old name');
    assert.equal(info?.running, true);
    assert.equal(info?.labels['devbox.test'], 'sync');
    assert.equal(await o.docker.inspectContainer(id), undefined, 'the old container is gone');
    assert.equal(await readInContainer(o.docker, next, '/app/src/app.js'), 'v2');
    assert.equal(await readInContainer(o.docker, next, '/etc/podinfo/labels'), 'app=api', 'carried over');
    const env = await o.docker.exec(next, [
      'node',
      '-e',
      'process.stdout.write(process.env.FROM_DEVBOX ?? "")',
    ]);
    assert.equal(env.stdout, 'yes');

    // A build that fails leaves the container running and says so.
    await writeFile(join(project, 'Dockerfile'), `FROM ${o.runtimeImage}\nCOPY missing-file /x\n`);
    cycle = nextCycle(loop, 120_000);
    await writeFile(join(project, 'src', 'app.js'), 'v3');
    assert.equal((await cycle).action, 'failed');
    assert.equal(loop.serviceId, next);
    assert.equal((await o.docker.inspectContainer(next))?.running, true);
    assert.ok(
      notices.some((n) => /build failed; the previous container keeps running/.test(n)),
      notices.join('\n'),
    );
  } finally {
    await loop.close();
    await removeSyncContainers(o.docker);
    await rm(project, { recursive: true, force: true });
  }
}
