import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  cliSummary,
  devcontainerCli,
  findOnPath,
  installedCliPath,
  logTail,
  logText,
  parseResult,
  upArgs,
  writeDockerWrapper,
} from '../../../src/devcontainer/cli.js';
import { isDevboxError } from '../../../src/util/errors.js';

const run = promisify(execFile);

describe('Dev Containers CLI output', () => {
  it('finds the result line among other output', () => {
    assert.deepEqual(parseResult('noise\n{"outcome":"success","containerId":"c1"}\n'), {
      outcome: 'success',
      containerId: 'c1',
    });
    assert.equal(parseResult('{"not":"a result"}\nplain'), undefined);
  });

  it('reads log text and drops step markers and colours', () => {
    assert.equal(
      logText('{"type":"raw","level":3,"text":"\\u001b[91mStep 2/3\\u001b[0m\\r\\n"}'),
      'Step 2/3\n',
    );
    assert.equal(logText('{"type":"start","text":"Run: docker"}'), undefined);
    assert.equal(logText('not json'), 'not json');
  });

  it('keeps the last useful lines, without the legacy builder banner or the CLI stack trace', () => {
    const tail = logTail([
      'DEPRECATED: The legacy builder is deprecated\n            Install the buildx component to build images with BuildKit:\n',
      'Step 1/2 : FROM x\n',
      '\n',
      "The command '/bin/sh -c false' returned a non-zero code: 1\n",
      'Error: Command failed: docker build -f x\n    at IW (/x/devContainersSpecCLI.js:470:2009)\n',
    ]);
    assert.deepEqual(tail, [
      'Step 1/2 : FROM x',
      "The command '/bin/sh -c false' returned a non-zero code: 1",
    ]);
  });

  it('summarises a failure by its description and most telling line', () => {
    assert.equal(
      cliSummary('An error occurred setting up the container.', 'Command failed: docker build …', [
        'Step 2/2 : RUN false',
        "The command '/bin/sh -c false' returned a non-zero code: 1",
      ]),
      "An error occurred setting up the container: The command '/bin/sh -c false' returned a non-zero code: 1",
    );
    assert.equal(
      cliSummary('', 'Dev container config (x) not found.', []),
      'Dev container config (x) not found.',
    );
  });

  it('passes the config, the override and the id labels', () => {
    assert.deepEqual(
      upArgs({
        workspaceFolder: '/w',
        configFile: '/w/.devcontainer/devcontainer.json',
        overrideConfig: '/t/o.json',
        idLabels: { 'devbox.session': 's' },
        skipPostCreate: true,
      }),
      [
        'up',
        '--workspace-folder',
        '/w',
        '--config',
        '/w/.devcontainer/devcontainer.json',
        '--override-config',
        '/t/o.json',
        '--id-label',
        'devbox.session=s',
        '--log-format',
        'json',
        '--skip-post-create',
      ],
    );
  });

  it('resolves the installed CLI', async () => {
    await fs.access(installedCliPath());
  });
});

describe('the docker wrapper', () => {
  let dir: string;
  before(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'devbox-dc-cli-'));
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  it('adds --force-rm to legacy builds only', async () => {
    const fake = join(dir, "fake docker's");
    await fs.writeFile(fake, '#!/bin/sh\nprintf "%s|" "$@"\n', { mode: 0o755 });
    const wrapper = await writeDockerWrapper(dir, fake);
    assert.equal((await fs.stat(wrapper)).mode & 0o777, 0o700);
    assert.equal((await run(wrapper, ['build', '-t', 'x', '.'])).stdout, 'build|--force-rm|-t|x|.|');
    assert.equal((await run(wrapper, ['buildx', 'build', '.'])).stdout, 'buildx|build|.|');
    assert.equal((await run(wrapper, ['run', 'a b'])).stdout, 'run|a b|');
    assert.equal(await findOnPath("fake docker's", { PATH: `/nonexistent:${dir}` }), fake);
    assert.equal(await findOnPath('nope', { PATH: dir }), undefined);
  });
});

describe('devcontainerCli against a stand-in CLI', () => {
  let dir: string;
  let cliPath: string;
  before(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'devbox-dc-fake-'));
    cliPath = join(dir, 'devcontainer.js');
    // Behaves as the real CLI does: JSON log on stderr, one result line on stdout.
    await fs.writeFile(
      cliPath,
      `const args = process.argv.slice(2);
require('fs').writeFileSync(${JSON.stringify(join(dir, 'args.json'))}, JSON.stringify(args));
require('fs').writeFileSync(${JSON.stringify(join(dir, 'tmpdir.txt'))}, process.env.TMPDIR || '');
const log = (text) => process.stderr.write(JSON.stringify({ type: 'raw', level: 3, text }) + '\\n');
if (process.env.FAKE_MODE === 'fail') {
  log('Step 2/2 : RUN exit 3\\n');
  log("The command '/bin/sh -c exit 3' returned a non-zero code: 3\\n");
  console.log(JSON.stringify({ outcome: 'error', message: 'Command failed: docker build', description: 'An error occurred building the image.' }));
  process.exit(1);
}
if (process.env.FAKE_MODE === 'hang') { setInterval(() => {}, 1000); }
else if (process.env.FAKE_MODE === 'crash') { process.exit(7); }
else { log('Container started\\n'); console.log(JSON.stringify({ outcome: 'success', containerId: 'c0ffee', remoteUser: 'node', remoteWorkspaceFolder: '/workspaces/w' })); }
`,
    );
  });
  after(() => fs.rm(dir, { recursive: true, force: true }));

  const cli = (mode: string) =>
    devcontainerCli({ cliPath, workDir: dir, env: { ...process.env, FAKE_MODE: mode } });
  const target = { workspaceFolder: '/w', configFile: '/w/c.json', idLabels: { 'devbox.session': 's1' } };

  it('returns the container, user and folder, and runs docker through the wrapper', async () => {
    const lines: string[] = [];
    const result = await cli('ok').up(target, { onOutput: (l) => lines.push(l) });
    assert.deepEqual(result, {
      containerId: 'c0ffee',
      remoteUser: 'node',
      remoteWorkspaceFolder: '/workspaces/w',
    });
    assert.deepEqual(lines, ['Container started\n']);
    const args = JSON.parse(await fs.readFile(join(dir, 'args.json'), 'utf8')) as string[];
    assert.equal(args[args.indexOf('--docker-path') + 1], join(dir, 'docker'));
    assert.equal(
      await fs.readFile(join(dir, 'tmpdir.txt'), 'utf8'),
      join(dir, 'tmp'),
      'its temporary files stay in the work directory',
    );
  });

  it('turns a failure into a BAD_INPUT with the failing step', async () => {
    await assert.rejects(
      cli('fail').up(target),
      (err) =>
        isDevboxError(err, 'BAD_INPUT') &&
        /devcontainer up failed: An error occurred building the image: The command .* returned a non-zero code: 3/.test(
          err.message,
        ) &&
        /Step 2\/2 : RUN exit 3/.test(err.hint ?? ''),
    );
    await assert.rejects(
      cli('crash').runUserCommands({ ...target, containerId: 'c' }),
      (err) => isDevboxError(err, 'BAD_INPUT') && /exited with code 7/.test(err.message),
    );
  });

  it('stops the CLI when aborted', async () => {
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(new Error('interrupted')), 300);
    await assert.rejects(cli('hang').up(target, { signal: controller.signal }), /interrupted/);
    assert.ok(Date.now() - started < 5000);
  });
});
