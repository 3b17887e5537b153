import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseProjectFile, SCHEMA_FILE, selectWorkloads } from '../../../src/project/index.js';
import { isDevboxError } from '../../../src/util/errors.js';

const schema = JSON.parse(await readFile(SCHEMA_FILE, 'utf8')) as object;
/** The project: sync paths must exist in it. Messages name the file as given, /p/devbox.yaml. */
const project = await mkdtemp(join(tmpdir(), 'devbox-project-'));
await mkdir(join(project, 'src'));
await symlink(tmpdir(), join(project, 'elsewhere'));
after(() => rm(project, { recursive: true, force: true }));
const parse = (text: string) => parseProjectFile(text, '/p/devbox.yaml', project, schema);

/** The error's lines, for asserting on each problem. */
async function problems(text: string): Promise<string[]> {
  try {
    await parse(text);
  } catch (err) {
    assert.ok(isDevboxError(err, 'BAD_INPUT'), String(err));
    return err.message.split('\n');
  }
  assert.fail('the file was accepted');
}

const full = `# yaml-language-server: $schema=node_modules/devbox/schema/devbox.schema.json
namespace: shop
workloads:
  api:
    build: .
    command: [node, server.js]
    env:
      PORT: 8080
      DEBUG: true
    volumes: ["./data:/data:ro"]
    ports: ["18080:8080"]
    workdir: /app
    sync: ["src:/app/src"]
    onChange: rebuild
  inventory:
    workload: deploy/inventory-v2
    image: inventory:dev
    build: null
  storefront:
`;

describe('devbox.yaml', () => {
  it('gives each workload the settings its flags would', async () => {
    const file = await parse(full.replace('    build: null\n', ''));
    assert.equal(file.namespace, 'shop');
    assert.deepEqual([...file.workloads.keys()], ['api', 'inventory', 'storefront']);
    assert.deepEqual(file.workloads.get('api'), {
      workload: 'api',
      build: { dir: '.' },
      command: ['node', 'server.js'],
      env: ['PORT=8080', 'DEBUG=true'],
      volumes: ['./data:/data:ro'],
      publish: ['18080:8080'],
      workdir: '/app',
      sync: ['src:/app/src'],
      onChange: 'rebuild',
      filters: { headers: [], personal: false, mirror: false },
    });
    assert.equal(file.workloads.get('inventory')?.workload, 'deploy/inventory-v2');
    assert.deepEqual(file.workloads.get('storefront'), {
      workload: 'storefront',
      command: [],
      env: [],
      volumes: [],
      publish: [],
      sync: [],
      filters: { headers: [], personal: false, mirror: false },
    });
  });

  it('takes the team-mode settings of a session: name and which requests it takes', async () => {
    const file = await parse(
      'workloads:\n  api:\n    name: alice-fix\n    httpHeaders: [x-user=alice]\n    httpPathPrefix: /api/\n    personal: true\n',
    );
    const api = file.workloads.get('api');
    assert.equal(api?.name, 'alice-fix');
    assert.deepEqual(api?.filters, {
      headers: ['x-user=alice'],
      pathPrefix: '/api/',
      personal: true,
      mirror: false,
    });
    const [header] = await problems('workloads:\n  api:\n    httpHeaders: ["host=x"]\n');
    assert.match(header!, /devbox\.yaml:3:18: workloads\.api\.httpHeaders: .*host/);
    const [name] = await problems('workloads:\n  api:\n    name: Alice\n');
    assert.match(name!, /devbox\.yaml:3:11: workloads\.api\.name: must be a session name/);
  });

  it('names the file, line, column and key of an unknown key, and lists the known ones', async () => {
    const [line, ...rest] = await problems('workloads:\n  api:\n    imagee: api:dev\n');
    assert.deepEqual(rest, []);
    assert.match(
      line!,
      /^\/p\/devbox\.yaml:3:5: workloads\.api\.imagee: unknown key \(known: workload, container, image,/,
    );
  });

  it('reports every problem at once, each at its own line', async () => {
    const lines = await problems(
      [
        'namespace: Shop',
        'extra: 1',
        'workloads:',
        '  api:',
        '    onChange: reload',
        '    build: {context: ., dockerfil: x}',
        '    env: {1BAD: x}',
        '    command: node server.js',
      ].join('\n'),
    );
    assert.deepEqual(lines.map((l) => l.replace(/^\/p\/devbox\.yaml:/, '').split(': ')[0]).sort(), [
      '1:12',
      '2:1',
      '5:15',
      '6:25',
      '7:11',
      '8:14',
    ]);
    assert.ok(lines.some((l) => l.includes('workloads.api.onChange: must be one of restart, rebuild, none')));
    assert.ok(lines.some((l) => l.includes('workloads.api.command: must be a list')));
    assert.ok(lines.some((l) => l.includes('workloads.api.env.1BAD: the key must be a variable name')));
    assert.ok(lines.some((l) => l.includes('namespace: must be a Kubernetes namespace name')));
  });

  it('refuses malformed YAML with its position', async () => {
    const [line] = await problems('workloads:\n  api: [unclosed\n');
    assert.match(line!, /^\/p\/devbox\.yaml:\d+:\d+: /);
  });

  it('refuses a key given twice', async () => {
    const [line] = await problems('workloads:\n  api: {}\n  api: {}\n');
    assert.match(line!, /^\/p\/devbox\.yaml:3:3: .*[Uu]nique/);
  });

  it('checks each value as its flag is, naming the list item', async () => {
    const lines = await problems(
      [
        'workloads:',
        '  api:',
        '    ports: ["8080:8080", "nope"]',
        '    sync: ["src:/app/../x"]',
        '    onChange: rebuild',
      ].join('\n'),
    );
    assert.ok(
      lines.some((l) => /devbox\.yaml:3:26: workloads\.api\.ports\.1: Invalid -p nope/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /devbox\.yaml:4:12: workloads\.api\.sync\.0: .*normalized/.test(l)),
      lines.join('\n'),
    );
    assert.ok(
      lines.some((l) => /workloads\.api\.onChange: rebuild needs `build`/.test(l)),
      lines.join('\n'),
    );
  });

  it('refuses a sync path outside the project or missing, at its line', async () => {
    const lines = await problems(
      'workloads:\n  api:\n    sync: ["elsewhere:/app/x", "nope.js:/app/nope.js", "src:/app/src"]\n',
    );
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(
      lines[0]!,
      /devbox\.yaml:3:12: workloads\.api\.sync\.0: --sync elsewhere:\/app\/x: .* is outside the project/,
    );
    assert.match(
      lines[1]!,
      /devbox\.yaml:3:32: workloads\.api\.sync\.1: --sync nope\.js:\/app\/nope\.js: .*nope\.js does not exist/,
    );
  });

  it('needs at least one workload', async () => {
    assert.match((await problems('namespace: shop\n'))[0]!, /\(top level\): missing key workloads/);
    assert.match((await problems('workloads: {}\n'))[0]!, /workloads: must NOT have fewer than 1 properties/);
  });
});

describe('selecting workloads', () => {
  let file: Awaited<ReturnType<typeof parse>>;
  before(async () => {
    file = await parse(full.replace('    build: null\n', ''));
  });

  it('takes every workload of the file when none is named, the command line adding to each', async () => {
    const chosen = selectWorkloads([], file, { env: ['X=1'], volumes: ['/a:/b'], image: 'over:ride' });
    assert.deepEqual(
      chosen.map((w) => w.workload),
      ['api', 'deploy/inventory-v2', 'storefront'],
    );
    assert.deepEqual(chosen[0]!.env, ['PORT=8080', 'DEBUG=true', 'X=1']);
    assert.deepEqual(chosen[0]!.volumes, ['./data:/data:ro', '/a:/b']);
    // --image replaces the file's build rather than clashing with it.
    assert.equal(chosen[0]!.image, 'over:ride');
    assert.equal(chosen[0]!.build, undefined);
  });

  it('takes a subset by name, and refuses a name the file does not list', async () => {
    assert.deepEqual(
      selectWorkloads(['storefront', 'api'], file, {}).map((w) => w.workload),
      ['storefront', 'api'],
    );
    assert.throws(() => selectWorkloads(['apii'], file, {}), /lists no workload named apii/);
  });

  it('without a file takes the names as workloads, with the flags applied to each', async () => {
    const chosen = selectWorkloads(['api', 'inventory'], undefined, { env: ['A=b'], sync: ['src:/app'] });
    assert.deepEqual(
      chosen.map((w) => [w.workload, w.env, w.sync]),
      [
        ['api', ['A=b'], ['src:/app']],
        ['inventory', ['A=b'], ['src:/app']],
      ],
    );
    assert.throws(() => selectWorkloads([], undefined, {}), /Name a workload, or write a devbox\.yaml/);
  });
});
